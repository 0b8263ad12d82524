"""The OMOP CDM 5.4 export (exports.omop): the CDM's columns, types and NOT NULL rules, one
MEASUREMENT row per reading, the summary values, the sensor sessions as DEVICE_EXPOSURE, and
CSV that DuckDB loads into the CDM's own tables."""

from __future__ import annotations

import csv
import datetime as dt
import math

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from glucosestream.config import IngestSettings, LakeSettings, Settings
from glucosestream.errors import ConfigError
from glucosestream.events import EVENT_SCHEMA
from glucosestream.exports.omop import write_omop
from glucosestream.exports.omop_tables import columns, schema
from glucosestream.ingest import ingest_records
from glucosestream.ingest.identity import patient_key
from glucosestream.pipeline import run_pipeline
from glucosestream.published import PublishedLake, window_summary

from .conftest import SECRET
from .test_pipeline_events import write_event_batch

# Test data copied from OHDSI/CommonDataModel inst/ddl/5.4/duckdb/OMOPCDM_duckdb_5.4_ddl.sql
# (commit f853f6e): the columns of the five tables the export writes, in order, as
# "<name> <type>[ NOT NULL]".
DDL_54 = {
    "person": (
        "person_id integer NOT NULL",
        "gender_concept_id integer NOT NULL",
        "year_of_birth integer NOT NULL",
        "month_of_birth integer",
        "day_of_birth integer",
        "birth_datetime TIMESTAMP",
        "race_concept_id integer NOT NULL",
        "ethnicity_concept_id integer NOT NULL",
        "location_id integer",
        "provider_id integer",
        "care_site_id integer",
        "person_source_value varchar(50)",
        "gender_source_value varchar(50)",
        "gender_source_concept_id integer",
        "race_source_value varchar(50)",
        "race_source_concept_id integer",
        "ethnicity_source_value varchar(50)",
        "ethnicity_source_concept_id integer",
    ),
    "observation_period": (
        "observation_period_id integer NOT NULL",
        "person_id integer NOT NULL",
        "observation_period_start_date date NOT NULL",
        "observation_period_end_date date NOT NULL",
        "period_type_concept_id integer NOT NULL",
    ),
    "measurement": (
        "measurement_id integer NOT NULL",
        "person_id integer NOT NULL",
        "measurement_concept_id integer NOT NULL",
        "measurement_date date NOT NULL",
        "measurement_datetime TIMESTAMP",
        "measurement_time varchar(10)",
        "measurement_type_concept_id integer NOT NULL",
        "operator_concept_id integer",
        "value_as_number NUMERIC",
        "value_as_concept_id integer",
        "unit_concept_id integer",
        "range_low NUMERIC",
        "range_high NUMERIC",
        "provider_id integer",
        "visit_occurrence_id integer",
        "visit_detail_id integer",
        "measurement_source_value varchar(50)",
        "measurement_source_concept_id integer",
        "unit_source_value varchar(50)",
        "unit_source_concept_id integer",
        "value_source_value varchar(50)",
        "measurement_event_id integer",
        "meas_event_field_concept_id integer",
    ),
    "device_exposure": (
        "device_exposure_id integer NOT NULL",
        "person_id integer NOT NULL",
        "device_concept_id integer NOT NULL",
        "device_exposure_start_date date NOT NULL",
        "device_exposure_start_datetime TIMESTAMP",
        "device_exposure_end_date date",
        "device_exposure_end_datetime TIMESTAMP",
        "device_type_concept_id integer NOT NULL",
        "unique_device_id varchar(255)",
        "production_id varchar(255)",
        "quantity integer",
        "provider_id integer",
        "visit_occurrence_id integer",
        "visit_detail_id integer",
        "device_source_value varchar(50)",
        "device_source_concept_id integer",
        "unit_concept_id integer",
        "unit_source_value varchar(50)",
        "unit_source_concept_id integer",
    ),
    # drug_exposure: the same file at commit 0dd2175
    "drug_exposure": (
        "drug_exposure_id integer NOT NULL",
        "person_id integer NOT NULL",
        "drug_concept_id integer NOT NULL",
        "drug_exposure_start_date date NOT NULL",
        "drug_exposure_start_datetime TIMESTAMP",
        "drug_exposure_end_date date NOT NULL",
        "drug_exposure_end_datetime TIMESTAMP",
        "verbatim_end_date date",
        "drug_type_concept_id integer NOT NULL",
        "stop_reason varchar(20)",
        "refills integer",
        "quantity NUMERIC",
        "days_supply integer",
        "sig TEXT",
        "route_concept_id integer",
        "lot_number varchar(50)",
        "provider_id integer",
        "visit_occurrence_id integer",
        "visit_detail_id integer",
        "drug_source_value varchar(50)",
        "drug_source_concept_id integer",
        "route_source_value varchar(50)",
        "dose_unit_source_value varchar(50)",
    ),
    "cdm_source": (
        "cdm_source_name varchar(255) NOT NULL",
        "cdm_source_abbreviation varchar(25) NOT NULL",
        "cdm_holder varchar(255) NOT NULL",
        "source_description TEXT",
        "source_documentation_reference varchar(255)",
        "cdm_etl_reference varchar(255)",
        "source_release_date date NOT NULL",
        "cdm_release_date date NOT NULL",
        "cdm_version varchar(10)",
        "cdm_version_concept_id integer NOT NULL",
        "vocabulary_version varchar(20) NOT NULL",
    ),
}
START = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 1, 25, 12, tzinfo=dt.UTC)
IDS = ("P1", "=HYPERLINK(1)")
LOINC_READING = "99504-3"


def _records(patient: str, tz: str, days: int, *, mmol: bool) -> list[dict]:
    out = []
    for i in range(days * 288):
        if 100 <= i < 130:
            continue  # a 2.5-hour gap: a sensor change, two sessions
        mg = 140 + 50 * math.sin(i / 288 * 2 * math.pi)
        at = (START + dt.timedelta(minutes=5 * i)).isoformat()
        row = {"patient_id": patient, "time": at, "tz": tz, "device_id": f"SERIAL-{patient}"}
        row |= {"glucose_mmol_l": round(mg / 18.0156, 1)} if mmol else {"glucose_mg_dl": mg}
        out.append(row)
    return out


def _event(at: dt.datetime, kind: str, subtype: str, **amounts) -> dict:
    row = dict.fromkeys(EVENT_SCHEMA.names)
    row.update(patient_key=patient_key(SECRET.encode(), IDS[0]), device_id="pump", source="test")
    row.update(ts=at, tz="Europe/Berlin", kind=kind, subtype=subtype, ingested_at=NOW, **amounts)
    return row


# P1's insulin: three doses (a normal and an extended bolus, a long-acting injection), and a
# temporary basal segment and a meal, which are not doses.
DOSE_TIMES = (START + dt.timedelta(days=1, hours=7), START + dt.timedelta(days=2, hours=12),
              START + dt.timedelta(days=1, hours=21))  # fmt: skip
EVENTS = (
    _event(DOSE_TIMES[0], "bolus", "normal", units=4.0),
    _event(DOSE_TIMES[0], "carbs", "meal", carbs_g=50.0),
    _event(DOSE_TIMES[1], "bolus", "extended", units=2.0, duration_min=90.0),
    _event(DOSE_TIMES[2], "basal", "injection", units=18.0),
    _event(START + dt.timedelta(days=3), "basal", "temporary", rate_u_h=0.5, duration_min=60.0),
)


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    settings = Settings(
        lake=LakeSettings(root=str(tmp_path_factory.mktemp("omop") / "lake")),
        ingest=IngestSettings(pseudonym_secret=SECRET),
    )
    ingest_records(settings, _records(IDS[0], "Europe/Berlin", 16, mmol=False))
    ingest_records(settings, _records(IDS[1], "America/New_York", 15, mmol=True))
    write_event_batch(settings, "b-insulin", list(EVENTS))
    assert run_pipeline(settings).status == "published"
    keys = [patient_key(SECRET.encode(), i) for i in IDS]
    return settings, PublishedLake(settings).current(), keys


@pytest.fixture(scope="module")
def exported(lake, tmp_path_factory):
    settings, run, keys = lake
    out = {}
    for fmt in ("csv", "parquet"):
        folder = tmp_path_factory.mktemp(f"omop-{fmt}")
        report = write_omop(run, keys, None, None, folder, fmt=fmt, settings=settings, now=NOW)
        out[fmt] = (folder, report)
    return out


def _parquet(exported, table: str) -> pa.Table:
    return pq.read_table(exported["parquet"][0] / f"{table}.parquet")


def _ddl(table: str) -> list[tuple[str, str, bool]]:
    return [(c.split(" ")[0], c.split(" ")[1], c.endswith("NOT NULL")) for c in DDL_54[table]]


@pytest.mark.parametrize("table", sorted(DDL_54))
def test_tables_have_the_cdm_54_columns_types_and_not_null_rules(table):
    assert [(c.name, c.ddl_type, c.required) for c in columns(table)] == _ddl(table)


@pytest.mark.parametrize("table", sorted(DDL_54))
def test_files_are_written_in_the_ddl_column_order(exported, table):
    with (exported["csv"][0] / f"{table}.csv").open(encoding="utf-8") as f:
        header = next(csv.reader(f))
    assert header == [name for name, _, _ in _ddl(table)]
    written = _parquet(exported, table).schema
    assert written.names == header
    assert [f.type for f in written] == [f.type for f in schema(table)]


@pytest.mark.parametrize("table", sorted(DDL_54))
def test_not_null_columns_hold_a_value_in_every_row(exported, table):
    rows = _parquet(exported, table)
    assert rows.num_rows > 0
    for name, _, required in _ddl(table):
        if required:
            assert rows[name].null_count == 0, name


def test_each_reading_is_one_measurement_row_in_mg_dl(lake, exported):
    _, run, keys = lake
    rows = _parquet(exported, "measurement")
    readings = rows.filter(pc.equal(rows["measurement_source_value"], LOINC_READING))
    for person_id, key in enumerate(keys, start=1):
        published = run.readings([key]).sort_by("ts")
        mine = readings.filter(pc.equal(readings["person_id"], person_id)).sort_by(
            "measurement_datetime"
        )
        assert mine.num_rows == published.num_rows
        assert mine["value_as_number"].to_pylist() == published["glucose_mg_dl"].to_pylist()
        utc = published["ts"].cast(pa.timestamp("us"))
        assert mine["measurement_datetime"].to_pylist() == utc.to_pylist()
    assert set(readings["unit_concept_id"].to_pylist()) == {8840}
    assert set(readings["measurement_concept_id"].to_pylist()) == {0}
    assert set(readings["measurement_type_concept_id"].to_pylist()) == {32817}
    ids = rows["measurement_id"].to_pylist()
    assert sorted(ids) == list(range(1, len(ids) + 1))
    # both patients' rows in one row group (rows are gathered, not written per patient)
    assert pq.ParquetFile(exported["parquet"][0] / "measurement.parquet").num_row_groups == 1


def test_a_mmol_reading_keeps_the_value_as_sent(exported):
    rows = _parquet(exported, "measurement")
    second = rows.filter(
        pc.and_(
            pc.equal(rows["person_id"], 2),
            pc.equal(rows["measurement_source_value"], LOINC_READING),
        )
    )
    sent = second["value_source_value"].to_pylist()
    assert all(v.endswith(" mmol/L") for v in sent)
    first_value = float(sent[0].split(" ")[0])
    assert second["value_as_number"][0].as_py() == pytest.approx(first_value * 18.0156)


EXPECTED_SUMMARY = {  # LOINC code -> (metric, unit_concept_id, unit_source_value)
    "97507-8": ("mean_mg_dl", 8840, "mg/dL"),
    "104642-4": ("pct_below_54", 8554, "%"),
    "104641-6": ("pct_54_69", 8554, "%"),
    "97510-2": ("pct_70_180", 8554, "%"),
    "104640-8": ("pct_181_250", 8554, "%"),
    "104639-0": ("pct_above_250", 8554, "%"),
    "97506-0": ("gmi_pct", 8554, "%"),
    "104638-2": ("cv_pct", 8554, "%"),
    "104636-6": ("days", 0, "d"),
    "104637-4": ("active_pct", 8554, "%"),
}


def test_summary_rows_are_the_window_summary_with_their_units(lake, exported):
    _, run, keys = lake
    rows = _parquet(exported, "measurement")
    summary_rows = rows.filter(pc.not_equal(rows["measurement_source_value"], LOINC_READING))
    for person_id, key in enumerate(keys, start=1):
        summary = window_summary(run, key, None, None, now=NOW)
        mine = summary_rows.filter(pc.equal(summary_rows["person_id"], person_id)).to_pylist()
        assert {r["measurement_source_value"] for r in mine} == set(EXPECTED_SUMMARY)
        for row in mine:
            metric, unit_id, unit = EXPECTED_SUMMARY[row["measurement_source_value"]]
            assert row["value_as_number"] == pytest.approx(summary.metrics[metric])
            assert (row["unit_concept_id"], row["unit_source_value"]) == (unit_id, unit)
            assert row["measurement_date"] == summary.end
            assert row["value_source_value"] == f"{summary.start}/{summary.end}"
            assert row["measurement_type_concept_id"] == 32882


def test_device_exposures_are_the_sensor_sessions(lake, exported):
    _, run, keys = lake
    rows = _parquet(exported, "device_exposure")
    for person_id, key in enumerate(keys, start=1):
        sessions = run.results("sessions", key).sort_by("session_start")
        assert sessions.num_rows == 2  # the gap split the wear in two
        mine = rows.filter(pc.equal(rows["person_id"], person_id)).sort_by(
            "device_exposure_start_datetime"
        )
        start = sessions["session_start"].cast(pa.timestamp("us")).to_pylist()
        end = sessions["session_end"].cast(pa.timestamp("us")).to_pylist()
        assert mine["device_exposure_start_datetime"].to_pylist() == start
        assert mine["device_exposure_end_datetime"].to_pylist() == end
        assert mine["device_source_value"].to_pylist() == sessions["device_id"].to_pylist()
    devices = set(rows["device_source_value"].to_pylist())
    assert all(d.startswith("dev-") and "SERIAL" not in d for d in devices)
    assert rows["unique_device_id"].null_count == rows.num_rows


def test_each_insulin_dose_is_one_drug_exposure_in_units(exported):
    rows = _parquet(exported, "drug_exposure").sort_by("drug_exposure_start_datetime").to_pylist()
    utc = [t.replace(tzinfo=None) for t in sorted(DOSE_TIMES)]
    assert [r["drug_exposure_start_datetime"] for r in rows] == utc
    assert [(r["drug_source_value"], r["quantity"]) for r in rows] == [
        ("insulin bolus normal", 4.0),
        ("insulin basal injection", 18.0),
        ("insulin bolus extended", 2.0),
    ]
    ends = [r["drug_exposure_end_datetime"] - r["drug_exposure_start_datetime"] for r in rows]
    assert ends == [dt.timedelta(0), dt.timedelta(0), dt.timedelta(minutes=90)]
    assert {(r["person_id"], r["drug_concept_id"], r["drug_type_concept_id"]) for r in rows} == {
        (1, 0, 32817)
    }
    assert {(r["drug_source_concept_id"], r["dose_unit_source_value"]) for r in rows} == {(0, "U")}
    assert sorted(r["drug_exposure_id"] for r in rows) == [1, 2, 3]


def test_person_observation_period_and_cdm_source(exported):
    people = _parquet(exported, "person").to_pylist()
    assert [p["person_source_value"] for p in people] == list(IDS)
    assert {(p["gender_concept_id"], p["race_concept_id"], p["year_of_birth"]) for p in people} == {
        (0, 0, 0)
    }
    periods = _parquet(exported, "observation_period").to_pylist()
    assert [p["person_id"] for p in periods] == [1, 2]
    assert all(p["observation_period_start_date"] <= dt.date(2026, 1, 5) for p in periods)
    source = _parquet(exported, "cdm_source").to_pylist()
    assert len(source) == 1
    assert (source[0]["cdm_version"], source[0]["cdm_version_concept_id"]) == ("v5.4", 756265)


def test_csv_neutralises_a_formula_in_an_id(exported):
    text = (exported["csv"][0] / "person.csv").read_text(encoding="utf-8")
    assert "'=HYPERLINK(1)" in text
    assert ",=HYPERLINK" not in text
    assert ',"=HYPERLINK' not in text


def _create(con, table: str) -> None:
    body = ", ".join(DDL_54[table])
    con.execute(f"CREATE TABLE {table} ({body})")


@pytest.mark.parametrize("table", sorted(DDL_54))
def test_omop_csv_loads_into_duckdb_with_the_declared_types(exported, table):
    con = duckdb.connect()
    _create(con, table)
    path = exported["csv"][0] / f"{table}.csv"
    con.execute(f"COPY {table} FROM '{path}' (HEADER, DELIMITER ',')")
    loaded = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    assert loaded == _parquet(exported, table).num_rows
    if table == "measurement":
        back = con.execute(
            "SELECT measurement_datetime, value_as_number FROM measurement "
            "ORDER BY measurement_id LIMIT 1"
        ).fetchone()
        first = _parquet(exported, table).sort_by("measurement_id").slice(0, 1).to_pylist()[0]
        assert back[0] == first["measurement_datetime"]
        assert float(back[1]) == pytest.approx(first["value_as_number"], abs=1e-3)


def test_a_missing_not_null_value_would_be_refused_by_the_ddl(tmp_path):
    con = duckdb.connect()
    _create(con, "person")
    bad = tmp_path / "person.csv"
    bad.write_text("person_id,gender_concept_id,year_of_birth\n1,,0\n", encoding="utf-8")
    with pytest.raises(duckdb.ConstraintException):
        con.execute(f"INSERT INTO person BY NAME SELECT * FROM read_csv('{bad}')")


def test_the_report_counts_rows_and_bytes(exported):
    folder, report = exported["csv"]
    assert sorted(p.name for p in report.files) == sorted(f"{t}.csv" for t in DDL_54)
    assert report.rows["person"] == 2
    assert report.rows["cdm_source"] == 1
    assert report.bytes == sum(p.stat().st_size for p in folder.iterdir())


def test_a_window_exports_only_its_local_days(lake, tmp_path):
    settings, run, keys = lake
    window = (dt.date(2026, 1, 10), dt.date(2026, 1, 12))
    write_omop(run, keys[:1], *window, tmp_path, fmt="parquet", settings=settings, now=NOW)
    rows = pq.read_table(tmp_path / "measurement.parquet")
    readings = rows.filter(pc.equal(rows["measurement_source_value"], LOINC_READING))
    assert readings.num_rows == 3 * 288  # Berlin's days, from 23:00 UTC the day before
    assert min(readings["measurement_datetime"].to_pylist()) == dt.datetime(
        2026, 1, 9, 23, tzinfo=dt.UTC
    ).replace(tzinfo=None)


def test_an_id_longer_than_the_cdm_column_is_refused(lake, tmp_path):
    settings, run, keys = lake
    with pytest.raises(ConfigError, match=r"varchar\(50\).*--pseudonymous"):
        write_omop(
            run, keys[:1], None, None, tmp_path, fmt="csv", settings=settings,
            identities={keys[0]: "x" * 51}, now=NOW,
        )  # fmt: skip
    assert not any(tmp_path.iterdir())


class _FakeRun:
    """A published run holding only the given readings (no sessions, no events)."""

    run_id = "run-fake"

    def __init__(self, readings: pa.Table) -> None:
        self._readings = readings

    def readings(self, keys, since=None):
        return self._readings.filter(pc.is_in(self._readings["patient_key"], pa.array(keys)))

    def results(self, table, patient_key=None):
        from glucosestream.pipeline.sensor_wear import SENSOR_SESSIONS_SCHEMA

        return SENSOR_SESSIONS_SCHEMA.empty_table()

    def events(self, patient_key, start=None, end=None):
        return EVENT_SCHEMA.empty_table()


def test_calibrations_are_left_out_and_low_high_readings_say_so(monkeypatch, tmp_path):
    from glucosestream.errors import NotFound
    from glucosestream.readings import READING_SCHEMA, ReadingFlag

    def no_summary(*args, **kwargs):
        raise NotFound("no complete day")

    monkeypatch.setattr("glucosestream.exports.omop.window_summary", no_summary)
    at = [START + dt.timedelta(minutes=5 * i) for i in range(4)]
    flags = [
        0,
        int(ReadingFlag.CALIBRATION),
        int(ReadingFlag.SENSOR_LOW),
        int(ReadingFlag.SENSOR_HIGH),
    ]
    readings = pa.table(
        {
            "patient_key": ["k1"] * 4, "device_id": ["dev-1"] * 4, "source": ["dexcom"] * 4,
            "ts": at, "glucose_mg_dl": [100.0, 120.0, 40.0, 400.0],
            "original_value": [100.0, 120.0, 40.0, 400.0], "original_unit": ["mg/dL"] * 4,
            "flags": flags, "tz": ["UTC"] * 4, "batch_id": ["b"] * 4, "ingested_at": at,
            "direction": [None] * 4, "rate_mg_dl_min": [None] * 4,
        },
        READING_SCHEMA,
    )  # fmt: skip
    report = write_omop(
        _FakeRun(readings), ["k1"], None, None, tmp_path, fmt="parquet",
        settings=Settings(), identities={"k1": "P9"}, now=NOW,
    )  # fmt: skip
    rows = pq.read_table(tmp_path / "measurement.parquet")
    assert rows["value_as_number"].to_pylist() == [100.0, 40.0, 400.0]
    assert rows["value_source_value"].to_pylist() == ["100 mg/dL", "<=40 mg/dL", ">=400 mg/dL"]
    assert any("1 fingerstick calibration" in note for note in report.notes)
    assert any("P9: no summary" in note for note in report.notes)
    assert report.rows["device_exposure"] == 0
    (period,) = pq.read_table(tmp_path / "observation_period.parquet").to_pylist()
    assert period["observation_period_start_date"] == START.date()


def test_a_patient_with_only_calibrations_is_not_a_person(monkeypatch, tmp_path):
    from glucosestream.readings import READING_SCHEMA, ReadingFlag

    at = [START]
    readings = pa.table(
        {
            "patient_key": ["k1"], "device_id": ["dev-1"], "source": ["dexcom"], "ts": at,
            "glucose_mg_dl": [120.0], "original_value": [120.0], "original_unit": ["mg/dL"],
            "flags": [int(ReadingFlag.CALIBRATION)], "tz": ["UTC"], "batch_id": ["b"],
            "ingested_at": at, "direction": [None], "rate_mg_dl_min": [None],
        },
        READING_SCHEMA,
    )  # fmt: skip
    report = write_omop(
        _FakeRun(readings), ["k1"], None, None, tmp_path, fmt="csv",
        settings=Settings(), identities={"k1": "P9"}, now=NOW,
    )  # fmt: skip
    assert (report.rows["person"], report.rows["measurement"]) == (0, 0)
    assert "P9: no published sensor readings in the window" in report.notes
