"""The tidy export (exports.tidy): one row per published reading, the daily metrics and one
window summary row per patient, a data dictionary naming every column written, Parquet types,
and CSV that a spreadsheet cannot run as formulas."""

from __future__ import annotations

import csv
import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from glucosestream.errors import ConfigError
from glucosestream.exports.data_dictionary import TIDY_FILES
from glucosestream.exports.table_files import TableFile, output_folder, safe_text
from glucosestream.exports.tidy import DICTIONARY_FILE, write_tidy
from glucosestream.published import window_summary

from .test_export_omop import IDS, NOW
from .test_export_omop import lake as lake  # the same small published lake

FILES = TIDY_FILES


@pytest.fixture(scope="module")
def exported(lake, tmp_path_factory):
    settings, run, keys = lake
    out = {}
    for fmt in ("csv", "parquet"):
        folder = tmp_path_factory.mktemp(f"tidy-{fmt}")
        report = write_tidy(run, keys, None, None, folder, fmt=fmt, settings=settings, now=NOW)
        out[fmt] = (folder, report)
    return out


def _parquet(exported, name: str) -> pa.Table:
    return pq.read_table(exported["parquet"][0] / f"{name}.parquet")


def _csv_rows(exported, name: str) -> list[dict[str, str]]:
    with (exported["csv"][0] / name).open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_one_row_per_published_reading(lake, exported):
    _, run, keys = lake
    readings = _parquet(exported, "readings")
    csv_rows = _csv_rows(exported, "readings.csv")
    assert len(csv_rows) == readings.num_rows
    for key, identity in zip(keys, IDS, strict=True):
        published = run.readings([key]).sort_by("ts")
        mine = readings.filter(pc.equal(readings["patient_id"], identity))
        assert mine.num_rows == published.num_rows
        assert mine["time_utc"].to_pylist() == published["ts"].to_pylist()
        assert mine["glucose_mg_dl"].to_pylist() == published["glucose_mg_dl"].to_pylist()
        assert mine["device_id"].to_pylist() == published["device_id"].to_pylist()
    mmol = pc.divide(readings["glucose_mg_dl"], 18.0156)
    assert pc.all(pc.less(pc.abs(pc.subtract(readings["glucose_mmol_l"], mmol)), 1e-12)).as_py()


def test_local_time_and_day_are_on_the_patients_clock(exported):
    readings = _parquet(exported, "readings")
    first = readings.filter(pc.equal(readings["patient_id"], IDS[0])).slice(0, 1).to_pylist()[0]
    assert first["tz"] == "Europe/Berlin"
    assert first["time_utc"] == dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
    wall_clock = dt.datetime(2026, 1, 5, 1, 0, tzinfo=dt.UTC).replace(tzinfo=None)
    assert first["time_local"] == wall_clock
    assert first["local_date"] == dt.date(2026, 1, 5)
    (row,) = [r for r in _csv_rows(exported, "readings.csv") if r["patient_id"] == IDS[0]][:1]
    assert (row["time_utc"], row["time_local"]) == ("2026-01-05 00:00:00", "2026-01-05 01:00:00")
    assert (row["local_date"], row["calibration"], row["direction"]) == ("2026-01-05", "false", "")


@pytest.mark.parametrize("name", sorted(FILES))
def test_parquet_types_are_the_dictionarys(exported, name):
    written = _parquet(exported, name).schema
    assert [(f.name, f.type) for f in written] == [(c.name, c.type) for c in FILES[name]]
    assert written.field("patient_id").type == pa.string()
    if name == "readings":
        assert written.field("time_utc").type == pa.timestamp("us", tz="UTC")
        assert written.field("calibration").type == pa.bool_()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_the_dictionary_names_every_column_written_with_its_type(exported, fmt):
    folder, report = exported[fmt]
    assert folder / DICTIONARY_FILE in report.files
    with (folder / DICTIONARY_FILE).open(encoding="utf-8", newline="") as f:
        documented = {(r["file"], r["column"]): r for r in csv.DictReader(f)}
    written_columns = set()
    for name in FILES:
        path = folder / f"{name}.{fmt}"
        assert path in report.files
        if fmt == "csv":
            with path.open(encoding="utf-8") as f:
                written = next(csv.reader(f))
        else:
            schema = pq.read_schema(path)
            written = schema.names
            types = {row["column"]: row["type"] for (file, _), row in documented.items()
                     if file == path.name}  # fmt: skip
            assert {n: str(schema.field(n).type) for n in written} == types
        written_columns |= {(path.name, column) for column in written}
        for column in written:
            row = documented[(path.name, column)]
            assert row["type"]
            assert row["definition"]
            assert row["source"]
    assert set(documented) == written_columns  # and nothing documented that is not written


def test_parquet_dictionary_names_the_parquet_files(exported):
    folder, _ = exported["parquet"]
    with (folder / DICTIONARY_FILE).open(encoding="utf-8") as f:
        files = {row["file"] for row in csv.DictReader(f)}
    assert files == {"readings.parquet", "events.parquet", "metrics.parquet"}


def test_csv_strings_cannot_run_as_formulas(exported):
    for name in ("readings.csv", "metrics.csv"):
        ids = {row["patient_id"] for row in _csv_rows(exported, name)}
        assert ids == {"P1", "'=HYPERLINK(1)"}
    parquet_ids = set(_parquet(exported, "readings")["patient_id"].to_pylist())
    assert parquet_ids == set(IDS)  # Parquet keeps the id exactly


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"])
def test_every_formula_start_is_neutralised(text):
    assert safe_text(text) == "'" + text
    assert safe_text("P" + text) == "P" + text


def test_metrics_are_the_daily_rows_and_one_window_summary_per_patient(lake, exported):
    _, run, keys = lake
    metrics = _parquet(exported, "metrics")
    for key, identity in zip(keys, IDS, strict=True):
        mine = metrics.filter(pc.equal(metrics["patient_id"], identity))
        days = mine.filter(pc.equal(mine["row_kind"], "day"))
        published = run.daily_index().patient_days(key)
        assert days["period_start"].to_pylist() == published["date"].to_pylist()
        assert days["mean_mg_dl"].to_pylist() == published["mean_mg_dl"].to_pylist()
        assert days["active_pct"].to_pylist() == published["pct_active"].to_pylist()
        complete = days["complete"].to_pylist()
        assert complete[:-1] == [True] * (len(complete) - 1)
        assert complete[-1] is False  # the newest local day ends before its last 20 minutes
        (window,) = mine.filter(pc.equal(mine["row_kind"], "window")).to_pylist()
        summary = window_summary(run, key, None, None, now=NOW)
        assert (window["period_start"], window["period_end"]) == (summary.start, summary.end)
        assert window["period_end"] == days["period_start"][-2].as_py()
        for name in ("mean_mg_dl", "pct_70_180", "pct_54_69", "gmi_pct", "days", "readings"):
            assert window[name] == pytest.approx(summary.metrics[name])
        assert window["sufficient_14d"] is bool(summary.metrics["sufficient_14d"])


def test_a_window_keeps_only_its_days(lake, tmp_path):
    settings, run, keys = lake
    window = (dt.date(2026, 1, 10), dt.date(2026, 1, 12))
    report = write_tidy(run, keys, *window, tmp_path, fmt="parquet", settings=settings, now=NOW)
    readings = pq.read_table(tmp_path / "readings.parquet")
    assert set(readings["local_date"].to_pylist()) == {dt.date(2026, 1, d) for d in (10, 11, 12)}
    assert report.rows["readings"] == readings.num_rows
    metrics = pq.read_table(tmp_path / "metrics.parquet")
    assert metrics.num_rows == 2 * (3 + 1)


def test_csv_tells_empty_text_from_null_and_quotes_what_needs_it(tmp_path):
    schema = pa.schema([("text", pa.string()), ("n", pa.float64())])
    path = tmp_path / "t.csv"
    with TableFile(path, schema, "csv") as f:
        f.write(pa.table({"text": ["", None, 'a,"b"\nc', "-x"], "n": [1.5, None, -2.0, 0.1]}))
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["text", "n"]
    assert rows[1:] == [["", "1.5"], ["", ""], ['a,"b"\nc', "-2"], ["'-x", "0.1"]]
    raw = path.read_text(encoding="utf-8").splitlines()
    assert raw[1] == '"",1.5'  # empty text is quoted, NULL is an empty field
    assert raw[2] == ","


def test_an_out_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "out.parquet"
    target.write_text("x", encoding="utf-8")
    with pytest.raises(ConfigError, match="is a file"):
        output_folder(target)
    assert output_folder(tmp_path / "new" / "folder").is_dir()
