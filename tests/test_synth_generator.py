"""The generator: deterministic, streamed in chunks that do not change the data, sampled like a
CGM, with the sensor's sessions, warm-ups, dropouts, compression lows and range clipping."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import numpy as np
import pyarrow as pa
import pytest

from glucosestream.errors import ConfigError
from glucosestream.readings import ReadingFlag
from glucosestream.synth import CohortSpec, generate_chunks, generator, write_cohort
from glucosestream.synth.grid import make_grid
from glucosestream.synth.profiles import ZONES, draw_params, n_param_draws
from glucosestream.synth.sensor import DAY_UNIFORMS, SESSION_DRAWS, max_sessions, read_sensor

LOW, HIGH = int(ReadingFlag.SENSOR_LOW), int(ReadingFlag.SENSOR_HIGH)


def cohort(spec: CohortSpec) -> pa.Table:
    return pa.concat_tables(generate_chunks(spec))


def plain(table: pa.Table) -> pa.Table:
    """Dictionary columns as strings: chunks have their own dictionaries."""
    return pa.table(
        [c.cast(pa.string()) if pa.types.is_dictionary(c.type) else c for c in table.columns],
        names=table.column_names,
    )


def by_patient(table: pa.Table) -> dict[str, dict[str, np.ndarray]]:
    ids = table["patient_id"].cast(pa.string()).to_numpy(zero_copy_only=False)
    times = table["time"].cast(pa.int64()).to_numpy() // 10**6
    values = table["glucose_mg_dl"].to_numpy()
    flags = table["flags"].to_numpy()
    devices = table["device_id"].cast(pa.string()).to_numpy(zero_copy_only=False)
    return {
        p: {"t": times[ids == p], "g": values[ids == p], "f": flags[ids == p],
            "device": devices[ids == p][0]}
        for p in dict.fromkeys(ids)
    }  # fmt: skip


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_same_spec_gives_the_same_bytes(tmp_path, fmt):
    spec = CohortSpec(3, 2, "mixed", 5, 42)
    a = write_cohort(spec, tmp_path / f"a.{fmt}", fmt)
    b = write_cohort(spec, tmp_path / f"b.{fmt}", fmt)
    assert a.readings == b.readings > 0
    assert (tmp_path / f"a.{fmt}").read_bytes() == (tmp_path / f"b.{fmt}").read_bytes()
    other = write_cohort(CohortSpec(3, 2, "mixed", 5, 43), tmp_path / f"c.{fmt}", fmt)
    assert (tmp_path / f"c.{fmt}").read_bytes() != (tmp_path / f"a.{fmt}").read_bytes()
    assert other.readings > 0


def test_chunking_changes_nothing_and_patients_do_not_depend_on_cohort_size(monkeypatch):
    spec = CohortSpec(7, 2, "mixed", 5, 5)
    whole = cohort(spec)
    monkeypatch.setattr(generator, "_CHUNK_CELLS", 2 * 576)  # two patients a chunk
    chunks = list(generate_chunks(spec))
    assert len(chunks) == 4
    assert plain(pa.concat_tables(chunks)).equals(plain(whole))
    small = by_patient(cohort(CohortSpec(3, 2, "mixed", 5, 5)))
    large = by_patient(whole)
    for pid, data in small.items():
        assert np.array_equal(data["g"], large[pid]["g"])
        assert np.array_equal(data["t"], large[pid]["t"])


def test_columns_types_and_patient_order():
    table = cohort(CohortSpec(4, 1, "mixed", 5, 1))
    assert table.column_names == [
        "patient_id", "device_id", "time", "glucose_mg_dl", "tz", "flags", "profile",
    ]  # fmt: skip
    assert table.schema.field("time").type == pa.timestamp("us", tz="UTC")
    assert pa.types.is_integer(table.schema.field("glucose_mg_dl").type)
    ids = table["patient_id"].cast(pa.string()).to_pylist()
    assert list(dict.fromkeys(ids)) == ["P00001", "P00002", "P00003", "P00004"]
    assert ids == sorted(ids)
    assert set(table["tz"].cast(pa.string()).to_pylist()) <= set(ZONES)
    assert set(table["profile"].cast(pa.string()).to_pylist()) <= {
        "healthy", "t2d_oral", "t2d_basal", "t2d_mdi", "t1d_well", "t1d_poor",
    }  # fmt: skip


@pytest.mark.parametrize("interval_min", [1, 5, 15])
def test_sampling_interval_and_device_range(interval_min):
    table = cohort(CohortSpec(3, 2, "t1d", interval_min, 3))
    for data in by_patient(table).values():
        steps = np.diff(data["t"])
        assert steps.min() >= interval_min * 60
        assert np.median(steps) == interval_min * 60
        assert data["g"].min() >= 40
        assert data["g"].max() <= 400
        assert np.all(data["g"][data["f"] == LOW] == 40)
        assert np.all(data["g"][data["f"] == HIGH] == 400)
        expected = 2 * 1440 // interval_min
        assert 0.5 * expected <= data["t"].size <= expected


def test_low_and_high_readings_are_clipped_and_flagged():
    flags = cohort(CohortSpec(30, 3, "t1d", 5, 0))["flags"].to_numpy()
    assert (flags == LOW).sum() > 0
    assert (flags == HIGH).sum() > 0
    assert set(np.unique(flags)) <= {0, LOW, HIGH}


def test_sensor_sessions_leave_warm_up_gaps_and_dropouts_leave_holes():
    patients = by_patient(cohort(CohortSpec(20, 25, "mixed", 5, 8)))
    for data in patients.values():
        gaps_min = np.diff(data["t"]) / 60
        # 25 days outlast any 10- or 14-day sensor: a new one starts, after its warm-up
        # (G6: 2 hours; G7: 30 minutes; Libre: 1 hour).
        warm_up = 120 if len(data["device"]) == 6 else 30
        assert gaps_min.max() >= warm_up
        # readings also stop briefly now and then (signal loss)
        assert (gaps_min > 5).sum() >= 3
    active = np.array([d["t"].size / (25 * 288) for d in patients.values()])
    assert 0.85 <= np.median(active) <= 0.99


def test_compression_lows_happen_at_night():
    """Constant interstitial glucose, no noise: what dips is compression, and only at night."""
    spec = CohortSpec(200, 6, "healthy", 5, 2)
    grid = make_grid(spec.start, spec.days, 5, ZONES)
    indices = np.arange(spec.patients)
    rng = np.random.default_rng(0)
    params = draw_params("healthy", indices, rng.standard_normal((indices.size, n_param_draws())))
    days, sessions = spec.days + 2, max_sessions(spec.days)
    ig = np.full((grid.n, indices.size), 120.0, np.float32)
    out = read_sensor(
        params,
        grid,
        ig,
        np.zeros_like(ig),
        (
            rng.random((indices.size, days, DAY_UNIFORMS)),
            rng.random((indices.size, sessions, SESSION_DRAWS)),
            np.zeros((indices.size, sessions, SESSION_DRAWS)),
        ),
    )
    dipped = out.glucose_mg_dl < 100  # day-1 bias and calibration stay within 10%
    assert dipped.sum() > 0
    utc_s = grid.start_us // 10**6 + out.sample.astype(np.int64) * 300
    for row in np.flatnonzero(dipped)[:500]:
        zone = zoneinfo.ZoneInfo(ZONES[int(params.zone[out.patient[row]])])
        local = dt.datetime.fromtimestamp(int(utc_s[row]), tz=zone)
        assert 0 <= local.hour < 8, local


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (CohortSpec(1, 1, "t1d", 10, 0), "interval_min=10"),
        (CohortSpec(1, 1, "elderly", 5, 0), "unknown profile"),  # type: ignore[arg-type]
        (CohortSpec(0, 1, "t1d", 5, 0), "at least 1 patient"),
    ],
)
def test_bad_specs_are_refused_with_the_reason(spec, message):
    with pytest.raises(ConfigError, match=message):
        next(generate_chunks(spec))
