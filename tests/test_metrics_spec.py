"""The metric spec is the one definition: kernels, reference, results schema and docs follow it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pyarrow as pa

from glucosestream.metrics import PERIOD_METRICS_SCHEMA, compute_metrics
from glucosestream.metrics.kernels import patients
from glucosestream.metrics.metric_options import MetricOptions
from glucosestream.metrics.reference.patient_metrics import GROUP_FUNCTIONS, _Patient
from glucosestream.metrics.reference.series import PatientSeries
from glucosestream.metrics.spec import (
    ALL,
    BY_NAME,
    CONSENSUS,
    GROUPS,
    METRICS,
    metric_table_markdown,
)

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "glucosestream"


def test_each_kernel_group_writes_the_spec_groups_columns_by_name_in_order():
    kernel = [(name, ("pgs",) if name == "pgs" else columns) for name, columns in patients.GROUPS]
    assert kernel == list(GROUPS)
    assert patients.GROUPS[patients.PGS][1] == patients.PGS_INPUT_COLUMNS
    indices = ("COVERAGE", "CORE", "RANGES", "GRI", "EPISODES", "DISTRIBUTION", "RISK")
    indices += ("VARIABILITY", "MAGE", "PGS", "DAY_NIGHT")
    for index in indices:
        assert patients.GROUPS[getattr(patients, index)][0] == index.lower()


def test_each_reference_group_returns_the_spec_groups_names_in_order():
    seconds = np.arange(0, 3 * 86_400, 300, dtype=np.int64)
    probe = PatientSeries(seconds, 100.0 + 50.0 * np.sin(seconds / 5000.0))
    patient = _Patient(probe, MetricOptions())
    assert list(GROUP_FUNCTIONS) == [group for group, _ in GROUPS]
    for group, names in GROUPS:
        assert tuple(GROUP_FUNCTIONS[group](patient)) == names, group


def test_sets_and_rows_agree():
    assert len(ALL) == len(set(ALL)) == len(METRICS)
    assert tuple(n for n in ALL if BY_NAME[n].tier == "consensus") == CONSENSUS
    for group, names in GROUPS:  # a group is wholly consensus or wholly research
        assert len({BY_NAME[n].tier for n in names}) == 1, group


def test_results_schema_types_come_from_the_spec():
    fields = {f.name: f.type for f in PERIOD_METRICS_SCHEMA}
    counts = {"readings", "gaps_over_inter_gap"} | {n for n in CONSENSUS if n.endswith("_episodes")}
    assert {n for n in CONSENSUS if fields.get(n) == pa.int64()} == counts
    assert fields["sufficient_14d"] == pa.bool_()
    assert fields["gri_zone"] == pa.string()
    assert fields["first_reading_local"] == fields["last_reading_local"] == pa.timestamp("s")


def test_the_docs_metric_table_is_the_spec():
    text = (ROOT / "docs" / "metrics.md").read_text()
    found = re.search(r"\]\]\] -->\n(\| metric \| group .*?)<!-- \[\[\[end\]\]\] -->", text, re.S)
    assert found, "docs/metrics.md lacks the generated metric table"
    assert found.group(1) == metric_table_markdown(), "run `cog -r -I docs docs/metrics.md`"


# Numbers that are glucose thresholds or day lengths, and where else they may appear as a
# literal for another reason (a GRI zone bound of 80, MAGE's 180-minute gap).
THRESHOLDS = {54, 63, 70, 80, 140, 180, 250, 1440, 86_400}
OTHER_MEANING = {("reference/consensus.py", 80.0), ("reference/mage.py", 180)}


def test_thresholds_are_named_once():
    metrics = PACKAGE / "metrics"
    found = []
    for path in metrics.rglob("*.py"):
        if path.name == "thresholds.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            value = getattr(node, "value", None) if isinstance(node, ast.Constant) else None
            if type(value) in (int, float) and value in THRESHOLDS:
                key = (path.relative_to(metrics).as_posix(), value)
                if key not in OTHER_MEANING:
                    found.append((*key, node.lineno))
    assert not found, f"use metrics/thresholds.py: {found}"
    sql = (metrics / "daily_metrics.sql").read_text()
    code = "\n".join(line.split("--")[0] for line in sql.splitlines())
    assert not re.search(r"\b(54|70|180|250)\b", code)


def test_one_metric_by_name_is_one_metric_not_its_characters():
    table = pa.table({"id": ["a", "a"], "time": [0, 300], "gl": [100.0, 120.0]})
    table = table.set_column(1, "time", table["time"].cast(pa.timestamp("s")))
    out = compute_metrics(table, "gmi_pct")
    assert out.column_names == ["id", "gmi_pct"]
    assert out["gmi_pct"][0].as_py() == 3.31 + 0.02392 * 110.0


def test_production_code_does_not_learn_metrics_from_the_reference():
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith("metrics/reference/"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported = [f"{node.module}.{alias.name}" for alias in node.names]
                assert not any("reference.patient_metrics" in n for n in imported), relative
                if not relative.startswith("metrics/"):
                    assert "metrics.reference" not in node.module, relative
