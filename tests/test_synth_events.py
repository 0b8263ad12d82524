"""The simulated events: the doses, basal, carbohydrates and exercise the generator kept, as the
model received them, chunk- and cohort-size-independent, and each sub-population's regimen."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import itertools
import json
import zoneinfo
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from glucosestream.synth import CohortSpec, generator, write_cohort
from glucosestream.synth.generator import generate_chunks, generate_events
from glucosestream.synth.grid import make_grid
from glucosestream.synth.physiology import DoseLog, basal_u_per_day, simulate
from glucosestream.synth.profiles import ZONES, draw_params, n_param_draws
from glucosestream.synth.schedule import DAY_NORMALS, DAY_UNIFORMS, build_inputs
from glucosestream.synth.simulated_events import SIMULATED_EVENT_SCHEMA
from glucosestream.synth.therapy import INJECTION_HOUR

# 40 patients of every sub-population over 4 days across the EU's autumn clock change
# (a 25-hour local day in London and Berlin).
SPEC = CohortSpec(40, 4, "mixed", 5, 3, dt.date(2026, 10, 24))


def plain(table: pa.Table) -> pa.Table:
    return pa.table(
        [c.cast(pa.string()) if pa.types.is_dictionary(c.type) else c for c in table.columns],
        names=table.column_names,
    )


@pytest.fixture(scope="module")
def events() -> pa.Table:
    return plain(pa.concat_tables(generate_events(SPEC)))


@pytest.fixture(scope="module")
def profiles() -> dict[str, str]:
    table = pa.concat_tables(generate_chunks(SPEC))
    ids = table["patient_id"].cast(pa.string()).to_pylist()
    kinds = table["profile"].cast(pa.string()).to_pylist()
    return dict(zip(ids, kinds, strict=True))


def rows(events: pa.Table, **equal: object) -> list[dict]:
    mask = None
    for name, value in equal.items():
        test = pc.equal(events[name], value)
        mask = test if mask is None else pc.and_(mask, test)
    return events.filter(mask).to_pylist() if mask is not None else events.to_pylist()


def test_schema_and_order(events):
    assert plain(SIMULATED_EVENT_SCHEMA.empty_table()).schema.names == events.schema.names
    keys = [(r["patient_id"], r["ts"]) for r in events.to_pylist()]
    assert keys == sorted(keys)
    assert set(events["kind"].to_pylist()) == {"bolus", "basal", "carbs", "exercise"}


def test_events_do_not_depend_on_chunking_or_cohort_size(monkeypatch, events):
    small = plain(pa.concat_tables(generate_events(dataclasses.replace(SPEC, patients=10))))
    assert small.num_rows > 0
    assert small.equals(events.filter(pc.is_in(events["patient_id"], small["patient_id"])))
    monkeypatch.setattr(generator, "_CHUNK_CELLS", 3 * 4 * 288)  # three patients a chunk
    chunks = list(generate_events(dataclasses.replace(SPEC, patients=10)))
    assert len(chunks) == 4
    assert plain(pa.concat_tables(chunks)).equals(small)


def test_recording_the_doses_changes_no_glucose():
    grid = make_grid(SPEC.start, 2, 5, ZONES)
    rng = np.random.default_rng(1)
    params = draw_params("t1d", np.arange(30), rng.standard_normal((30, n_param_draws())))
    inputs = build_inputs(
        params, grid, rng.random((30, 4, DAY_UNIFORMS)), rng.standard_normal((30, 4, DAY_NORMALS))
    )
    noise = rng.standard_normal((2, grid.n, 30)).astype(np.float32)
    log = DoseLog()
    with_log = simulate(params, grid, inputs, noise, log=log)
    without = simulate(params, grid, inputs, noise)
    assert np.array_equal(with_log[0], without[0])
    assert log.bolus_steps
    assert log.rescue_steps


def test_who_takes_insulin_how(events, profiles):
    by_patient: dict[str, Counter] = {p: Counter() for p in profiles}
    for r in events.filter(events["logged"]).to_pylist():
        by_patient[r["patient_id"]][(r["kind"], r["subtype"])] += 1
    seen = set()
    for patient, counts in by_patient.items():
        profile = profiles[patient]
        seen.add(profile)
        insulin = {k for k in counts if k[0] in ("bolus", "basal")}
        if profile in ("healthy", "t2d_oral"):
            assert not insulin
            assert ("carbs", "meal") not in counts  # nobody announces carbs to a bolus
        elif profile == "t2d_basal":
            assert insulin == {("basal", "injection")}
        elif profile == "t1d_well":
            assert ("basal", "scheduled") in insulin
            assert ("basal", "injection") not in insulin
            assert ("bolus", "normal") in insulin
        else:
            assert insulin == {("basal", "injection"), ("bolus", "normal")}
    assert seen == {"healthy", "t2d_oral", "t2d_basal", "t2d_mdi", "t1d_well", "t1d_poor"}


def test_pump_segments_cover_the_window_at_the_set_rate(events, profiles):
    window_min = SPEC.days * 1440
    for patient in (p for p, kind in profiles.items() if kind == "t1d_well"):
        segments = rows(events, patient_id=patient, kind="basal")
        assert sum(s["duration_min"] for s in segments) == window_min
        for before, after in itertools.pairwise(segments):
            assert before["ts"] + dt.timedelta(minutes=before["duration_min"]) == after["ts"]
        assert max(s["duration_min"] for s in segments) <= 1440
        assert len({s["rate_u_h"] for s in segments}) == 1
        for s in segments:
            assert s["units"] == pytest.approx(s["rate_u_h"] * s["duration_min"] / 60, abs=1e-4)
            assert round(s["rate_u_h"] / 0.05, 6) == round(s["rate_u_h"] / 0.05)
        # each segment but the first starts at a local midnight (or 24 h into a 25-hour day)
        zone = zoneinfo.ZoneInfo(segments[0]["tz"])
        local = [s["ts"].astimezone(zone) for s in segments[1:]]
        assert all(t.hour == 0 or t.hour == 23 for t in local)


def test_pen_basal_is_one_injection_a_day_at_bedtime(events, profiles):
    for patient in (p for p, k in profiles.items() if k in ("t2d_basal", "t2d_mdi", "t1d_poor")):
        shots = rows(events, patient_id=patient, kind="basal")
        zone = zoneinfo.ZoneInfo(shots[0]["tz"])
        local = [s["ts"].astimezone(zone) for s in shots]
        assert {(t.hour, t.minute) for t in local} == {(int(INJECTION_HOUR), 0)}
        assert len({t.date() for t in local}) == len(shots) in (SPEC.days, SPEC.days + 1)
        assert len({s["units"] for s in shots}) == 1
        assert shots[0]["units"] == int(shots[0]["units"]) > 0


def test_basal_logged_is_basal_delivered():
    spec = CohortSpec(12, 2, "t1d", 5, 4)
    chunk = next(generator.simulate_chunks(spec))
    grid = make_grid(spec.start, spec.days, 5, ZONES)
    rng_draws = generator._draw(spec, grid, np.arange(spec.patients))
    params = draw_params(spec.profile, np.arange(spec.patients), rng_draws.params)
    ids = [i.patient_id for i in chunk.identities]
    daily = dict(zip(ids, basal_u_per_day(params).tolist(), strict=True))
    events = plain(chunk.events)
    for patient, want in daily.items():
        basal = rows(events, patient_id=patient, kind="basal")
        if basal[0]["subtype"] == "scheduled":
            assert sum(b["units"] for b in basal) == pytest.approx(want * spec.days, abs=1e-3)
        else:
            assert {b["units"] for b in basal} == {want}


def test_boluses_are_device_steps_and_meals_are_logged_with_their_bolus(events, profiles):
    steps = {"t1d_well": 0.05, "t1d_poor": 0.5, "t2d_mdi": 1.0}
    for patient, kind in profiles.items():
        boluses = rows(events, patient_id=patient, kind="bolus")
        for b in boluses:
            assert b["units"] > 0
            assert round(b["units"] / steps[kind], 6) == round(b["units"] / steps[kind])
        meal_times = {b["ts"] for b in boluses if b["purpose"] == "meal"}
        announced = rows(events, patient_id=patient, kind="carbs", subtype="meal", logged=True)
        assert meal_times <= {c["ts"] for c in announced}
        assert all(c["carbs_g"] == int(c["carbs_g"]) > 0 for c in announced)
    purposes = Counter((r["kind"], r["purpose"]) for r in events.to_pylist())
    assert purposes[("bolus", "meal")] > purposes[("bolus", "correction")] > 0
    assert purposes[("carbs", "rescue")] > 0


def test_eaten_meals_are_kept_beside_what_was_announced(events):
    eaten = rows(events, kind="carbs", logged=False)
    announced = rows(events, kind="carbs", subtype="meal", logged=True)
    assert len(eaten) > len(announced) > 0  # healthy people eat; missed boluses log nothing
    assert {r["subtype"] for r in eaten} == {"meal"}
    assert all(r["carbs_g"] > 0 for r in eaten)
    rescue = rows(events, kind="carbs", subtype="correction")
    assert {r["carbs_g"] for r in rescue} == {16.0}
    assert all(r["logged"] for r in rescue)


def test_exercise_bouts_have_minutes_and_an_intensity(events):
    bouts = rows(events, kind="exercise")
    assert len(bouts) > 10
    assert {b["intensity"] for b in bouts} == {"low", "medium", "high"}
    assert all(0 < b["duration_min"] <= 75 and b["duration_min"] % 5 == 0 for b in bouts)
    assert all(b["logged"] for b in bouts)


# The events in the device exports: laid out as the real exports lay them out ----------------
SAMPLES = Path(__file__).parent / "data" / "samples"
EXPORT_SPEC = CohortSpec(8, 2, "t1d", 5, 1, dt.date(2026, 3, 7))


def manifest(folder: Path) -> list[dict[str, str]]:
    with (folder / "manifest.tsv").open(newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


@pytest.mark.skipif(not (SAMPLES / "nightscout").is_dir(), reason="samples not present")
def test_nightscout_treatments_look_like_a_sites(tmp_path):
    sample = json.loads((SAMPLES / "nightscout/cgm_format_nightscout_treatments.json").read_text())
    sample_keys = set().union(*(set(doc) for doc in sample))
    report = write_cohort(EXPORT_SPEC, tmp_path, "nightscout")
    rows = manifest(tmp_path)
    assert [r["file"] for r in rows] == [f"{r['patient_id']}_entries.json" for r in rows]
    assert sum(int(r["events"]) for r in rows) == report.events > 0
    for row in rows:
        assert row["treatments"] == f"{row['patient_id']}_treatments.json"
        docs = json.loads((tmp_path / row["treatments"]).read_text())
        assert [d["created_at"] for d in docs] == sorted(
            (d["created_at"] for d in docs), reverse=True
        )
        for doc in docs:
            assert set(doc) <= sample_keys
            assert doc["eventType"] in {
                "Meal Bolus", "Correction Bolus", "Carb Correction", "Exercise"
            }  # fmt: skip
            assert len(doc["_id"]) == 24
            dt.datetime.strptime(doc["created_at"], "%Y-%m-%dT%H:%M:%S.%fZ")  # noqa: DTZ007
        held = sum((d["insulin"] is not None) + (d["carbs"] is not None) for d in docs)
        held += sum(d["eventType"] == "Exercise" for d in docs)
        assert held + pump_days(tmp_path, row) == int(row["events"])


def pump_days(folder: Path, row: dict[str, str]) -> int:
    """The scheduled basal segments a pump patient's profile stands for: one from the first
    simulated instant and one from each local midnight after it, over the cohort's days."""
    if not row["basal_profile"]:
        return 0
    (document,) = json.loads((folder / row["basal_profile"]).read_text())
    store = document["store"][document["defaultProfile"]]
    assert store["timezone"] == row["tz"]
    assert len(store["basal"]) == 1
    start = dt.datetime.fromisoformat(document["startDate"].replace("Z", "+00:00"))
    assert start == dt.datetime.combine(EXPORT_SPEC.start, dt.time(), dt.UTC)
    zone = zoneinfo.ZoneInfo(row["tz"])
    end = start + dt.timedelta(days=EXPORT_SPEC.days)
    first = start.astimezone(zone).date()
    days = ((first + dt.timedelta(days=n)) for n in range(1, EXPORT_SPEC.days + 2))
    return 1 + sum(start < dt.datetime.combine(d, dt.time(), zone) < end for d in days)


def test_clarity_and_libreview_event_rows_keep_the_layout(tmp_path):
    write_cohort(EXPORT_SPEC, tmp_path / "dexcom", "dexcom")
    write_cohort(EXPORT_SPEC, tmp_path / "libreview", "libreview")
    types = Counter()
    for row in manifest(tmp_path / "dexcom"):
        text = (tmp_path / "dexcom" / row["file"]).read_text(encoding="utf-8-sig")
        lines = list(csv.reader(io.StringIO(text)))[1:]
        assert all(len(r) == 14 for r in lines)
        assert [int(r[0]) for r in lines] == list(range(1, len(lines) + 1))
        timed = [r for r in lines if r[1]]
        assert [r[1] for r in timed] == sorted(r[1] for r in timed)  # events among the EGVs
        events = [r for r in timed if r[2] != "EGV"]
        assert len(events) == int(row["events"])
        for r in events:
            types[(r[2], r[3])] += 1
            column = {"Insulin": 8, "Carbs": 9, "Exercise": 10}[r[2]]
            assert [i for i, v in enumerate(r) if v and i > 6] == [column]
    assert set(types) == {
        ("Insulin", "Fast-Acting"), ("Insulin", "Long-Acting"), ("Carbs", ""),
        ("Exercise", "Light"), ("Exercise", "Medium"), ("Exercise", "Heavy"),
    }  # fmt: skip
    for row in manifest(tmp_path / "libreview"):
        text = (tmp_path / "libreview" / row["file"]).read_text()
        lines = list(csv.reader(io.StringIO(text)))[2:]
        events = [r for r in lines if r[3] in ("4", "5")]
        assert len(events) == int(row["events"])
        for r in events:
            filled = [i for i, v in enumerate(r) if v and i > 3]
            assert filled in ([7], [12]) if r[3] == "4" else filled == [9]


def test_tidepool_event_datums_sit_in_the_cbg_array_in_time_order(tmp_path):
    write_cohort(EXPORT_SPEC, tmp_path, "tidepool")
    kinds = Counter()
    for row in manifest(tmp_path):
        data = json.loads((tmp_path / row["file"]).read_text())
        assert [d["time"] for d in data] == sorted(d["time"] for d in data)
        events = [d for d in data if d["type"] != "cbg"]
        kinds.update(d["type"] for d in events)
        pump = row["profile"] == "t1d_well"
        for d in events:
            assert {"time", "deviceTime", "timezoneOffset", "deviceId", "id", "uploadId"} <= set(d)
            assert (d["type"] in ("bolus", "basal", "wizard")) == d["deviceId"].startswith(
                "InsOmn-"
            )
            assert d["type"] != "insulin" or not pump
        wizards = {d["bolus"] for d in events if d["type"] == "wizard" and "bolus" in d}
        assert wizards <= {d["id"] for d in events if d["type"] == "bolus"}
    assert set(kinds) == {"bolus", "basal", "wizard", "insulin", "food", "physicalActivity"}
