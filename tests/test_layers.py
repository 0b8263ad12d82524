"""The import layering (issue 14): a lower layer never imports a higher one, nor a sibling of
its own layer. The rule is ``LAYERS`` in scripts/import_layers.py (run by `make lint`); these
tests hold the source, a deliberate bad import and docs/architecture.md to it."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "import_layers.py"
ARCHITECTURE = ROOT / "docs" / "architecture.md"


def _layers():
    spec = importlib.util.spec_from_file_location("import_layers", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["import_layers"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    src = tmp_path / "glucosestream"
    for name, text in {"__init__.py": "", **files}.items():
        path = src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return src


def test_the_source_keeps_the_layers():
    assert [str(v) for v in _layers().check()] == []


def test_the_lake_may_import_only_config_errors_readings_events_and_clock():
    layers = _layers()
    below = {unit for unit, i in layers.layer_of().items() if i < layers.layer_of()["lake"]}
    assert below == {"config", "errors", "readings", "events", "clock"}


def test_a_deliberate_bad_import_fails_and_is_named(tmp_path):
    src = _tree(
        tmp_path,
        {
            "lake/__init__.py": "from glucosestream.config import Settings\n",
            "lake/bad.py": "def f():\n    from glucosestream.metrics.daily import X\n",
            "metrics/__init__.py": "from glucosestream.lake import Lakehouse\n",
            "config.py": "",
        },
    )
    violations = _layers().check(src)
    assert [(v.path.name, v.line, v.imported) for v in violations] == [
        ("bad.py", 2, "glucosestream.metrics.daily")
    ]
    assert "lake may not import metrics" in violations[0].message
    run = subprocess.run(
        [sys.executable, str(SCRIPT), str(src)], capture_output=True, text=True, check=False
    )
    assert run.returncode == 1
    assert "bad.py:2: imports glucosestream.metrics.daily" in run.stderr


def test_siblings_of_one_layer_are_independent_and_relative_imports_count(tmp_path):
    src = _tree(
        tmp_path,
        {
            "ingest/__init__.py": "",
            "ingest/x.py": "from ..pipeline import steps\n",
            "pipeline/__init__.py": "",
            "pipeline/steps.py": "",
        },
    )
    [violation] = _layers().check(src)
    assert violation.imported == "glucosestream.pipeline"
    assert "one layer" in violation.message


def test_the_lake_is_imported_only_through_its_init(tmp_path):
    src = _tree(
        tmp_path,
        {
            "lake/__init__.py": "from glucosestream.lake.catalog import Lakehouse\n",
            "lake/catalog.py": "",
            "pipeline/__init__.py": "from glucosestream.lake import Lakehouse\n",
            "pipeline/steps.py": "from glucosestream.lake.catalog import Lakehouse\n",
        },
    )
    [violation] = _layers().check(src)
    assert (violation.path.name, violation.imported) == ("steps.py", "glucosestream.lake.catalog")
    assert "import it from glucosestream.lake" in violation.message


def test_a_package_in_no_layer_fails(tmp_path):
    src = _tree(tmp_path, {"newthing/__init__.py": ""})
    [violation] = _layers().check(src)
    assert "'newthing' is in no layer" in violation.message


def test_the_architecture_doc_draws_the_rule():
    assert _layers().layers_table() in ARCHITECTURE.read_text("utf-8")


def _names_a_module_or_its_attribute(dotted: str) -> bool:
    """``lake.catalog`` (a module), ``readings.READING_SCHEMA`` (a name in a module)."""
    owner = importlib.import_module("glucosestream")
    for part in dotted.removeprefix("glucosestream.").split("."):
        if hasattr(owner, "__path__") and importlib.util.find_spec(f"{owner.__name__}.{part}"):
            owner = importlib.import_module(f"{owner.__name__}.{part}")
        elif hasattr(owner, part):
            owner = getattr(owner, part)
        else:
            return False
    return True


def test_every_module_the_architecture_doc_names_exists():
    text = ARCHITECTURE.read_text("utf-8")
    files = set(re.findall(r"`((?:[\w.]+/)+[\w.]+\.(?:py|sql))`", text))
    missing = [
        f
        for f in files
        if not any(
            (base / f).exists() for base in (ROOT, ROOT / "src", ROOT / "src" / "glucosestream")
        )
    ]
    dotted = {
        name
        for name in re.findall(r"`((?:glucosestream\.)?[a-z_]+(?:\.[A-Za-z_]+)+)`", text)
        if name.split(".")[0] not in ("curated", "results")  # Iceberg tables, not modules
    }
    missing += [name for name in dotted if not _names_a_module_or_its_attribute(name)]
    assert sorted(missing) == []
    assert len(files) > 5  # the patterns still find the doc's names
    assert len(dotted) > 5


# A synthetic exporter writes the format its reader reads: the pair shares the format's name.
_FORMAT_PAIRS = frozenset({"dexcom", "fhir", "libreview", "nightscout", "tabular", "tidepool"})


def test_no_two_modules_share_a_name():
    """Two modules with one basename (two ``catalog.py``: metrics vs Iceberg) are read as one
    concept; only a format's reader and its synthetic writer share a name, by design."""
    package = ROOT / "src" / "glucosestream"
    seen: dict[str, list[str]] = {}
    for path in sorted(package.rglob("*.py")):
        if path.name != "__init__.py":
            seen.setdefault(path.stem, []).append(str(path.relative_to(package)))
    twins = {name: paths for name, paths in seen.items() if len(paths) > 1}
    for name in _FORMAT_PAIRS:
        assert twins.pop(name, None) == [f"formats/{name}.py", f"synth/exporters/{name}.py"]
    assert not twins, f"modules sharing a name: {twins}"
