"""The import layering (issue 14): a lower layer never imports a higher one. ``lake/`` is the
bottom of the stages: it imports only ``config``, ``errors``, ``readings``, ``clock`` and itself
(and third-party code). Checked over every import in the source, lazy ones included."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "glucosestream"
LAKE_MAY_IMPORT = ("config", "errors", "readings", "clock", "lake")
# Still to move (issue 14, the table registry): the lake's table specs name the metric schemas.
NOT_YET = {("lake.tables", "metrics.daily"), ("lake.tables", "metrics.result_schemas")}


def _imports(path: Path) -> set[str]:
    """The project modules a file imports (without the ``glucosestream.`` prefix)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        found |= {n.removeprefix("glucosestream.") for n in names if n.startswith("glucosestream.")}
    return found


def test_the_lake_imports_nothing_above_it():
    wrong = set()
    for path in sorted((SRC / "lake").glob("*.py")):
        module = f"lake.{path.stem}"
        for imported in _imports(path):
            if imported.split(".")[0] not in LAKE_MAY_IMPORT and (module, imported) not in NOT_YET:
                wrong.add((module, imported))
    assert wrong == set()


def test_the_known_exceptions_are_still_there():
    """So the list shrinks when the registry moves (a stale entry fails here)."""
    for module, imported in NOT_YET:
        assert imported in _imports(SRC / (module.replace(".", "/") + ".py")), (module, imported)
