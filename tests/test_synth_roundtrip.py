"""Round trip through the real ingest: synthesise a cohort in each device format, ingest every
export with the patient and zone a user would give, and get back the generated readings."""

from __future__ import annotations

import csv

import pyarrow.parquet as pq
import pytest

from glucosestream.ingest import ingest_path
from glucosestream.ingest.identity import patient_key
from glucosestream.lake import RawZone, open_storage
from glucosestream.readings import MG_DL_PER_MMOL_L
from glucosestream.synth import CohortSpec, write_cohort

from .conftest import SECRET

SPEC = CohortSpec(patients=3, days=2, profile="mixed", interval_min=5, seed=12)


@pytest.fixture(scope="module")
def truth(tmp_path_factory) -> dict[str, dict[int, float]]:
    """The generated readings per patient id: {epoch seconds: mg/dL}."""
    path = tmp_path_factory.mktemp("truth") / "c.parquet"
    write_cohort(SPEC, path, "parquet")
    table = pq.read_table(path).to_pylist()
    out: dict[str, dict[int, float]] = {}
    for row in table:
        out.setdefault(row["patient_id"], {})[int(row["time"].timestamp())] = row["glucose_mg_dl"]
    return out


@pytest.mark.parametrize("fmt", ["dexcom", "libreview", "nightscout", "tidepool", "fhir"])
def test_device_export_round_trips_through_ingest(settings, tmp_path, truth, fmt):
    folder = tmp_path / fmt
    write_cohort(SPEC, folder, fmt)
    with (folder / "manifest.tsv").open(newline="") as f:
        exports = list(csv.DictReader(f, delimiter="\t"))
    assert len(exports) == SPEC.patients
    secret = SECRET.encode()
    for export in exports:
        report = ingest_path(
            settings, folder / export["file"], patient_id=export["patient_id"], tz=export["tz"]
        )
        assert report.quarantined == 0, report.top_reasons
        batch = next(
            b
            for b in RawZone(open_storage(settings.lake)).list_batches()
            if b.batch_id == report.batch_id
        )
        rows = batch.readings().to_pylist()
        assert {r["patient_key"] for r in rows} == {patient_key(secret, export["patient_id"])}
        expected = truth[export["patient_id"]]
        # LibreView drops seconds: compare at minute precision there, exactly elsewhere.
        precision = 60 if fmt == "libreview" else 1
        want = {t // precision: g for t, g in expected.items()}
        got = {int(r["ts"].timestamp()) // precision: r["glucose_mg_dl"] for r in rows}
        assert got.keys() == want.keys(), export["file"]
        tolerance = 0.05 * MG_DL_PER_MMOL_L if export["unit"] == "mmol/L" else 1e-9
        worst = max(abs(got[t] - want[t]) for t in want)
        assert worst <= tolerance, (export["file"], worst)
