"""The import layering of the glucosestream package, written once, and its check (`make lint`).

``LAYERS`` lists the package's top-level units (a subpackage or a module of
``src/glucosestream``), bottom layer first. A module may import its own unit and any unit of a
lower layer; never a unit of its own layer (the units of one layer are independent of each
other) nor of a higher one. Every import counts: lazy ones inside functions, and those under
``TYPE_CHECKING``. A unit that is in no layer fails the check too, so a new package is placed
on purpose. Packages in ``SEALED`` are imported from outside only through their
``__init__`` (``from glucosestream.lake import Lakehouse``, never ``glucosestream.lake.catalog``).
docs/architecture.md draws ``LAYERS`` (a cog block calls ``layers_table``).

    python scripts/import_layers.py [SRC_PACKAGE_DIR]    # exit 1 naming each offending import

Standard library only: the check reads the source with ``ast`` and imports nothing.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "glucosestream"
ROOT = "glucosestream"  # the unit of the package's own __init__ (its public facade)
SRC = Path(__file__).resolve().parents[1] / "src" / PACKAGE

# Bottom layer first. Each entry: (the layer's units, what the layer is).
LAYERS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("errors",), "the exception tree"),
    (("clock", "events", "readings"), "the clock, the canonical reading and event"),
    (("config",), "Settings, the only reader of the environment"),
    (
        ("engines", "formats", "http_errors", "lake", "localclock", "quality", "synth"),
        "the lake (raw zone, Iceberg tables, metadata store), SQL engines, source formats, "
        "the HTTP error shape, quality checks, local days, synthetic data",
    ),
    (
        ("access", "live", "metrics"),
        "roles and tokens; readings not yet published; the metric catalog and kernels",
    ),
    (("alerts", "request_credentials"), "alert rules and delivery; credentials of a request"),
    (
        ("ingest", "pipeline", "privacy"),
        "the stages: ingest, the pipeline run (and the table registry), privacy releases",
    ),
    (("published",), "the read API over the published lake"),
    (("dashboard",), "pages, JSON API, AGP report"),
    (("app", "exports"), "the web application; exports for other systems (FHIR, OMOP, tidy)"),
    (("aws", "cli"), "the command line; the AWS Lambda entry points and the state machine"),
    (("__main__", ROOT), "entry points: python -m glucosestream, the package facade"),
)
# Packages whose __init__ is their whole interface to the rest of the package.
SEALED: tuple[str, ...] = ("lake",)


@dataclass(frozen=True, slots=True)
class Violation:
    path: Path
    line: int
    imported: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: imports {self.imported}: {self.message}"


def layer_of() -> dict[str, int]:
    """Each unit's layer index (0: the bottom)."""
    return {unit: i for i, (units, _) in enumerate(LAYERS) for unit in units}


def unit_of_module(dotted: str) -> str:
    """``glucosestream.lake.catalog`` -> ``lake``; ``glucosestream`` -> the facade."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def _module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([PACKAGE, *parts])


def imports_of(path: Path, src: Path) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import of the package in a source file."""
    module = _module_name(path, src)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from glucosestream import lake`` imports the subpackage, not the facade
            subunits = [f"{base}.{a.name}" for a in node.names] if base == PACKAGE else []
            names = subunits or [base]
        else:
            continue
        for name in names:
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                yield node.lineno, name


def check(src: Path = SRC) -> list[Violation]:
    """Every import that breaks the layering, and every unit that is in no layer."""
    layers = layer_of()
    found: list[Violation] = []
    for path in sorted(src.rglob("*.py")):
        unit = unit_of_module(_module_name(path, src))
        if unit not in layers:
            found.append(Violation(path, 1, "-", f"{unit!r} is in no layer: add it to LAYERS"))
            continue
        for line, imported in imports_of(path, src):
            target = unit_of_module(imported)
            if target == unit:
                continue
            if target in SEALED and imported != f"{PACKAGE}.{target}":
                message = f"import it from {PACKAGE}.{target} (its __init__ is its interface)"
            elif target not in layers:
                message = f"{target!r} is in no layer: add it to LAYERS"
            elif layers[target] == layers[unit]:
                message = f"{unit} and {target} are in one layer and independent of each other"
            elif layers[target] > layers[unit]:
                message = f"{unit} may not import {target}, which is in a higher layer"
            else:
                continue
            found.append(Violation(path, line, imported, message))
    return found


def layers_table() -> str:
    """The layering as a Markdown table, top layer first (docs/architecture.md)."""
    lines = ["| layer | units (`src/glucosestream/…`) | what |", "|---|---|---|"]
    for i, (units, what) in reversed(list(enumerate(LAYERS))):
        names = ", ".join(f"`{u}`" for u in units)
        lines.append(f"| {i} | {names} | {what} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    src = Path(argv[0]) if argv else SRC
    violations = check(src)
    for violation in violations:
        print(violation, file=sys.stderr)  # noqa: T201
    if violations:
        print(  # noqa: T201
            f"import layering: {len(violations)} import(s) break the rules of "
            "scripts/import_layers.py (a module imports its own layer's siblings, a higher "
            "layer, or a sealed package past its __init__); move the code down, import from "
            "the package, or change LAYERS and say why in docs/decisions.md",
            file=sys.stderr,
        )
        return 1
    print(f"import layering: {len(LAYERS)} layers, no import breaks them")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
