"""Ingest of events (insulin, carbs, exercise, device events, finger-sticks, ketones, notes):
validated into the raw batch's events.parquet with one reason per quarantined row, pseudonyms as
readings get them, duplicates found, and every received event accounted for."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from glucosestream.config import IngestSettings, LakeSettings, Settings
from glucosestream.events import EVENT_SCHEMA, MAX_NOTE_CHARS
from glucosestream.formats.event_rows import EventBuilder
from glucosestream.formats.rows import ParsedFile, RowBuilder
from glucosestream.ingest import accept, chunked, ingest_path
from glucosestream.ingest.batch import Part, build_batch, check_parts
from glucosestream.ingest.identity import load_secret, patient_key
from glucosestream.lake import RawZone

from .conftest import DATA, FixedClock
from .hostile import FUZZ, HOSTILE_TEXT
from .test_formats_samples import sample

NOW = dt.datetime(2026, 2, 1, 12, 0, tzinfo=dt.UTC)
AT = "2026-01-20T08:00:00Z"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


def parsed_file(monkeypatch, events: EventBuilder, rows: RowBuilder | None = None, **kw) -> None:
    """Make every file read as these rows and events (the parsers are tested on their own)."""
    rows = rows or RowBuilder()
    parsed = ParsedFile(rows.table(), events=events.table(), **kw)
    monkeypatch.setattr(
        accept, "read_raw_rows", lambda path, fmt, detected=None: ("tidepool", parsed)
    )


def ingest(settings, tmp_path, clock, **kw):
    path = tmp_path / "export.json"
    if not path.exists():
        path.write_text("[]", encoding="utf-8")
    return ingest_path(settings, path, fmt="tidepool", now=clock, **kw)


def only_batch(settings):
    [batch] = RawZone(Path(settings.lake.root)).list_batches()
    return batch


def accounted(report) -> int:
    return (
        report.events_accepted
        + report.events_duplicates
        + report.events_quarantined
        + report.events_notes_dropped
    )


def test_readings_and_events_of_a_patient_share_the_patient_key_and_batch(
    settings, tmp_path, clock, monkeypatch
):
    rows = RowBuilder()
    rows.add(1, time=AT, glucose="120", patient_id="P-7", device_id="SN-1")
    events = EventBuilder()
    events.add(
        2, kind="bolus", subtype="normal", time=AT, units="4.5", patient_id="P-7", device_id="SN-1"
    )
    events.add(
        2, kind="carbs", subtype="meal", time=AT, carbs_g="45", patient_id="P-7", device_id="SN-1"
    )
    parsed_file(monkeypatch, events, rows)
    report = ingest(settings, tmp_path, clock)
    assert (report.received, report.accepted) == (1, 1)
    assert (report.events_received, report.events_accepted) == (2, 2)
    batch = only_batch(settings)
    readings, got = batch.readings(), batch.events()
    key = patient_key(load_secret(settings), "P-7")
    assert set(readings["patient_key"].to_pylist()) == set(got["patient_key"].to_pylist()) == {key}
    assert got["device_id"].to_pylist() == readings["device_id"].to_pylist() * 2
    assert got.schema.equals(EVENT_SCHEMA)
    assert got.select(["kind", "subtype", "units", "carbs_g"]).to_pylist() == [
        {"kind": "bolus", "subtype": "normal", "units": 4.5, "carbs_g": None},
        {"kind": "carbs", "subtype": "meal", "units": None, "carbs_g": 45.0},
    ]
    assert set(got["batch_id"].to_pylist()) == {batch.batch_id}
    assert got["ts"].to_pylist()[0] == dt.datetime(2026, 1, 20, 8, 0, tzinfo=dt.UTC)
    assert batch.manifest()["events"] == {
        "received": 2,
        "accepted": 2,
        "duplicates": 0,
        "quarantined": 0,
        "notes_dropped": 0,
    }


def test_an_input_of_events_and_no_readings_is_ingested(settings, tmp_path, clock, monkeypatch):
    events = EventBuilder()
    events.add(1, kind="basal", subtype="temporary", time=AT, rate_u_h="0.8", duration_min="30")
    parsed_file(monkeypatch, events)
    report = ingest(settings, tmp_path, clock, patient_id="P-1")
    assert (report.received, report.events_received, report.events_accepted) == (0, 1, 1)
    batch = only_batch(settings)
    assert batch.readings().num_rows == 0
    [event] = batch.events().to_pylist()
    assert (event["rate_u_h"], event["duration_min"], event["units"]) == (0.8, 30.0, None)
    assert event["patient_key"] == patient_key(load_secret(settings), "P-1")
    again = ingest(settings, tmp_path, clock, patient_id="P-1")
    assert again.already_ingested_as == report.batch_id
    assert (again.events_received, again.events_duplicates) == (1, 1)


def test_an_events_only_export_that_names_no_patient_is_refused_unwritten(
    settings, tmp_path, clock, monkeypatch
):
    events = EventBuilder()
    events.add(1, kind="carbs", time=AT, carbs_g="20")
    parsed_file(monkeypatch, events)
    with pytest.raises(Exception, match="--patient"):
        ingest(settings, tmp_path, clock)
    assert not RawZone(Path(settings.lake.root)).list_batches()


# One bad value a row, and the reason it must be quarantined with.
BAD_ROWS = [
    ({"kind": "sleep"}, "unknown event kind"),
    ({"kind": " "}, "missing event kind"),
    ({"kind": "bolus", "subtype": "square wave", "units": "2"}, "unknown bolus subtype"),
    ({"kind": "bolus", "units": "2,5"}, "units is not a number"),
    ({"kind": "bolus", "units": "NaN"}, "units is not a number"),
    ({"kind": "bolus", "units": "１２"}, "units is not a number"),  # noqa: RUF001
    ({"kind": "bolus", "units": "-1"}, "units is negative"),
    ({"kind": "bolus", "units": "101"}, "units above the plausible most"),
    ({"kind": "bolus", "units": "1e309"}, "units above the plausible most"),
    ({"kind": "basal", "subtype": "injection", "units": "150"}, "units above the plausible most"),
    ({"kind": "basal", "rate_u_h": "40"}, "rate_u_h above the plausible most"),
    ({"kind": "basal", "rate_u_h": "1", "duration_min": "2000"}, "duration_min above"),
    ({"kind": "carbs", "carbs_g": "1500"}, "carbs_g above the plausible most"),
    ({"kind": "ketone", "ketone": "31"}, "ketone_mmol_l above the plausible most"),
    ({"kind": "bolus"}, "bolus without units"),
    ({"kind": "basal", "subtype": "scheduled"}, "basal without a rate or units"),
    ({"kind": "carbs", "subtype": "meal"}, "carbs without grams"),
    ({"kind": "smbg"}, "smbg without glucose"),
    ({"kind": "ketone", "subtype": "blood"}, "ketone without a value"),
    ({"kind": "smbg", "glucose": "7", "unit": "kg"}, "unknown unit"),
    ({"kind": "smbg", "glucose": "900"}, "glucose outside the plausible range"),
    ({"kind": "carbs", "carbs_g": "5", "time": "2026-02-01T13:00:00Z"}, "outside the plausible"),
    ({"kind": "carbs", "carbs_g": "5", "time": "1989-12-31T23:59:59Z"}, "outside the plausible"),
    ({"kind": "carbs", "carbs_g": "5", "time": "yesterday"}, "unparsable time"),
    ({"kind": "carbs", "carbs_g": "5", "time": None}, "missing time"),
    ({"kind": "carbs", "carbs_g": "5", "tz": "Mars/Olympus_Mons"}, "unknown time zone"),
    (
        {"kind": "carbs", "carbs_g": "5", "time": "2025-03-30T01:30:00", "tz": "Europe/London"},
        "local time skipped by a daylight-saving change",
    ),
    ({"kind": "carbs", "carbs_g": "5", "patient_id": "P" * 300}, "patient id longer than"),
    ({"kind": "carbs", "carbs_g": "5", "device_id": "D" * 300}, "device id longer than"),
    ({"kind": "carbs", "carbs_g": "5", "patient_id": None}, "missing patient id"),
    (
        {"kind": "carbs", "carbs_g": "5", "problem": "the parser's own reason"},
        "the parser's own reason",
    ),
]


def checked_batch(settings, events: EventBuilder, *, key: str | None = None, **kw):
    """The batch one part of these events makes (nothing written)."""
    parsed = ParsedFile(RowBuilder().table(), events=events.table(), **kw)
    part = Part(parsed, "file", "tidepool", "sha", patient_key=key)
    return build_batch(check_parts(settings, [part], engine=None, now=FixedClock(NOW)), [part])


def test_each_bad_row_is_quarantined_with_its_one_reason(settings):
    events = EventBuilder()
    events.add(1, kind="carbs", subtype="meal", time=AT, carbs_g="30", patient_id="P-1")
    for line, (values, _) in enumerate(BAD_ROWS, start=2):
        given = {"time": AT, "patient_id": "P-1", **values}
        problem = given.pop("problem", None)
        events.add(line, problem=problem, **given)
    batch = checked_batch(settings, events)
    report = batch.results[0].report
    assert (report.events_accepted, report.events_quarantined) == (1, len(BAD_ROWS))
    assert batch.events["carbs_g"].to_pylist() == [30.0]
    quarantine = batch.event_quarantine.to_pylist()
    assert [q["line"] for q in quarantine] == list(range(2, len(BAD_ROWS) + 2))
    for q, (values, reason) in zip(quarantine, BAD_ROWS, strict=True):
        assert reason in q["reason"], (values, q["reason"])
        assert len(q["time"] or "") <= 256
        assert len(q["amount"] or "") <= 256


def test_quarantine_keeps_the_raw_kind_time_and_first_amount_clipped(
    settings, tmp_path, clock, monkeypatch
):
    events = EventBuilder()
    events.add(7, kind="bolus", time="x" * 1000, units="1" * 1000, patient_id="P-1")
    parsed_file(monkeypatch, events)
    ingest(settings, tmp_path, clock)
    [bad] = only_batch(settings).event_quarantine().to_pylist()
    assert bad["line"] == 7
    assert bad["reason"] == "unparsable time"
    assert (bad["kind"], len(bad["time"]), len(bad["amount"])) == ("bolus", 256, 256)
    assert bad["patient_key"] == patient_key(load_secret(settings), "P-1")


def test_values_are_read_leniently_where_readings_are(settings, tmp_path, clock, monkeypatch):
    events = EventBuilder()
    events.add(1, kind=" Bolus ", subtype="Normal", time=AT, units=" 2.5 ")
    events.add(2, kind="smbg", time=AT, glucose="6.5", unit="mmol")
    events.add(
        3, kind="exercise", subtype="Brisk walk", time=AT, duration_min="45", intensity="Moderate"
    )
    events.add(4, kind="exercise", time=AT, intensity="ludicrous")
    events.add(5, kind="basal", subtype="suspended", time=AT, duration_min="20")
    events.add(6, kind="device", subtype="site_change", time=AT, units="999")  # not a device's
    events.add(7, kind="carbs", time="2026-01-20 08:00", tz="Europe/Lisbon", carbs_g="10")
    parsed_file(monkeypatch, events, time_formats=("%Y-%m-%d %H:%M",))
    report = ingest(settings, tmp_path, clock, patient_id="P-1")
    assert report.events_accepted == 7, report.events_top_reasons
    got = only_batch(settings).events().to_pylist()
    assert (got[0]["kind"], got[0]["subtype"], got[0]["units"]) == ("bolus", "normal", 2.5)
    assert got[1]["original_value"] == 6.5
    assert got[1]["original_unit"] == "mmol/L"
    assert got[1]["glucose_mg_dl"] == pytest.approx(117.1, abs=0.1)
    assert (got[2]["subtype"], got[2]["intensity"], got[2]["duration_min"]) == (
        None,  # an activity's name is kept only with keep_notes (see the notes' tests)
        "medium",
        45.0,
    )
    assert got[3]["intensity"] is None
    assert (got[4]["rate_u_h"], got[4]["duration_min"]) == (0.0, 20.0)
    assert got[5]["units"] is None
    assert got[6]["tz"] == "Europe/Lisbon"
    assert got[6]["ts"] == dt.datetime(2026, 1, 20, 8, 0, tzinfo=dt.UTC)


def test_a_repeated_local_hour_is_read_as_readings_are(settings):
    events = EventBuilder()  # 01:30 twice on 2025-10-26 in London: BST, then GMT
    times = ("2025-10-26T01:10:00", "2025-10-26T01:50:00") * 2
    for line, time in enumerate(times, start=1):
        events.add(line, kind="carbs", time=time, tz="Europe/London", carbs_g=str(line))
    batch = checked_batch(settings, events, key="k1")
    hours = [t.hour for t in batch.events["ts"].to_pylist()]
    assert hours == [0, 0, 1, 1]


def test_notes_keep_no_text_unless_asked_and_a_note_with_nothing_left_is_dropped(
    settings, tmp_path, clock, monkeypatch
):
    events = EventBuilder()
    events.add(1, kind="note", time=AT, note="Lunch with Jane Doe")
    events.add(2, kind="note", subtype="Illness", time=AT, note="flu, called Dr Who")
    events.add(3, kind="bolus", time=AT, units="1", note="pizza at Jane's")
    events.add(4, kind="note", time="not a time", note="no subtype and a bad time")
    events.add(5, kind="note", subtype="Called Jane", time=AT)  # a free name: text too
    events.add(6, kind="exercise", subtype="Run with Jane", time=AT, duration_min="30")
    parsed_file(monkeypatch, events)
    report = ingest(settings, tmp_path, clock, patient_id="P-1")
    assert report.events_received == 6
    assert (report.events_accepted, report.events_notes_dropped) == (3, 3)
    assert report.events_quarantined == 0
    batch = only_batch(settings)
    got = batch.events().to_pylist()
    assert [(e["kind"], e["subtype"], e["note"]) for e in got] == [
        ("note", "illness", None),
        ("bolus", None, None),
        ("exercise", None, None),
    ]
    assert batch.manifest()["events"]["notes_dropped"] == 3
    lake = Path(settings.lake.root)
    for file in lake.rglob("*"):
        if file.is_file() and "_state" not in file.parts:
            for text in (b"Jane", b"Dr Who", b"pizza"):
                assert text not in file.read_bytes(), file


def test_kept_notes_are_cut_at_their_limit(tmp_path, clock, monkeypatch):
    settings = lake_settings(tmp_path, keep_notes=True)
    events = EventBuilder()
    events.add(1, kind="note", time=AT, note="  " + "n" * (MAX_NOTE_CHARS + 50) + "  ")
    events.add(2, kind="note", time=AT, note="   ")
    events.add(3, kind="exercise", subtype="Brisk  Walk", time=AT)
    parsed_file(monkeypatch, events)
    report = ingest(settings, tmp_path, clock, patient_id="P-1")
    assert (report.events_accepted, report.events_notes_dropped) == (2, 1)
    got = only_batch(settings).events()
    assert got["note"].to_pylist() == ["n" * MAX_NOTE_CHARS, None]
    assert got["subtype"].to_pylist() == [None, "brisk_walk"]


def lake_settings(tmp_path: Path, *, keep_notes: bool) -> Settings:
    return Settings(
        lake=LakeSettings(root=str(tmp_path / "lake")),
        ingest=IngestSettings(pseudonym_secret="s" * 40, keep_notes=keep_notes),
    )


def test_a_repeated_event_is_a_duplicate_and_the_first_line_wins(
    settings, tmp_path, clock, monkeypatch
):
    events = EventBuilder()
    p1 = {"patient_id": "P-1", "time": AT}
    events.add(5, kind="bolus", units="2", **p1)
    events.add(3, kind="bolus", units="2.0", **p1)  # earlier line: it is kept
    events.add(4, kind="bolus", units="3", **p1)  # another amount: another event
    events.add(6, kind="carbs", carbs_g="2", **p1)  # another kind
    events.add(7, kind="bolus", units="2", device_id="pump-2", **p1)  # another device
    events.add(8, kind="bolus", time=AT, units="2", patient_id="P-2")  # another patient
    events.add(9, kind="device", subtype="site_change", **p1)
    events.add(10, kind="device", subtype="site_change", **p1)  # no amount: the key alone
    parsed_file(monkeypatch, events)
    report = ingest(settings, tmp_path, clock)
    assert (report.events_accepted, report.events_duplicates) == (6, 2)
    got = only_batch(settings).events()
    assert got["units"].to_pylist()[:2] == [2.0, 3.0]  # line order: 3, 4, ...
    assert len(set(got["patient_key"].to_pylist())) == 2


EVENT_COLUMNS = (
    *("kind", "subtype", "time", "tz", "units", "rate_u_h", "duration_min", "carbs_g"),
    *("glucose", "unit", "ketone", "intensity", "note", "patient_id"),
)
KINDS = ("bolus", "basal", "carbs", "exercise", "device", "smbg", "ketone", "note")
hostile_values = st.one_of(
    st.none(),
    st.sampled_from(HOSTILE_TEXT),
    st.sampled_from(KINDS),
    st.sampled_from(("normal", "meal", "injection", "suspended", "blood", "site_change")),
    st.sampled_from((AT, "2026-01-20 08:00", "2026-01-20T08:00:00+01:00")),
    st.sampled_from(("1", "2.5", "0", "30", "1440")),
)
hostile_rows = st.lists(
    st.tuples(
        st.integers(1, 40), st.fixed_dictionaries({c: hostile_values for c in EVENT_COLUMNS})
    ),
    min_size=1,
    max_size=25,
)


@FUZZ
@given(rows=hostile_rows, keep_notes=st.booleans())
def test_every_hostile_event_is_accepted_quarantined_a_duplicate_or_a_dropped_note(
    rows, keep_notes
):
    settings = lake_settings(Path("/nonexistent"), keep_notes=keep_notes)  # nothing is written
    events = EventBuilder()
    for line, values in rows:
        values = dict(values)
        kind, time = values.pop("kind"), values.pop("time")
        events.add(line, kind=kind, time=time, **values)
    part = Part(
        ParsedFile(RowBuilder().table(), ("%Y-%m-%d %H:%M",), events=events.table()),
        "file",
        "tidepool",
        "sha",
    )
    batch = build_batch(check_parts(settings, [part], engine=None, now=FixedClock(NOW)), [part])
    report = batch.results[0].report
    assert report.events_received == len(rows)
    assert accounted(report) == report.events_received
    assert batch.events is not None
    assert batch.event_quarantine is not None
    assert batch.events.num_rows == report.events_accepted
    assert batch.event_quarantine.num_rows == report.events_quarantined
    assert batch.event_quarantine["reason"].null_count == 0
    assert batch.manifest["events"]["received"] == len(rows)
    assert batch.events.schema.equals(EVENT_SCHEMA)
    if not keep_notes:
        assert batch.events["note"].null_count == batch.events.num_rows
    # what is accepted is within the limits the gate checks
    for name, most in (("units", 840), ("rate_u_h", 35), ("carbs_g", 1000), ("duration_min", 1440)):
        values = batch.events[name].drop_null()
        assert pc.all(
            pc.and_(pc.greater_equal(values, 0), pc.less_equal(values, most))
        ).as_py() in (
            True,
            None,
        )


def test_parts_of_a_group_batch_keep_their_own_event_accounting(settings, clock):
    def part(sha, key, *amounts):
        events = EventBuilder()
        for i, amount in enumerate(amounts, start=1):
            events.add(i, kind="carbs", time=AT, carbs_g=amount)
        rows = RowBuilder()
        rows.add(1, time=AT, glucose="100")
        parsed = ParsedFile(rows.table(), events=events.table())
        return Part(parsed, "nightscout-api", "nightscout", sha, patient_key=key)

    parts = [part("a", "k1", "10", "x"), part("b", "k2", "10", "10", "-3", "20")]
    batch = build_batch(check_parts(settings, parts, engine=None, now=clock), parts)
    first, second = (r.report for r in batch.results)
    assert (first.events_received, first.events_accepted, first.events_quarantined) == (2, 1, 1)
    assert (second.events_received, second.events_accepted, second.events_duplicates) == (4, 2, 1)
    assert batch.results[0].event_quarantine["line"].to_pylist() == [2]
    assert batch.results[1].event_quarantine["line"].to_pylist() == [3]
    assert batch.events["patient_key"].to_pylist() == ["k1", "k2", "k2"]
    assert batch.manifest["events"]["received"] == 6
    assert [p["first_line"] for p in batch.manifest["parts"]] == [1, 3]


def test_events_of_a_large_file_go_with_their_chunk_and_repeats_across_chunks_are_duplicates(
    settings, tmp_path, clock, monkeypatch
):
    def chunk(first_line, amounts):
        rows, events = RowBuilder(), EventBuilder()
        for i, amount in enumerate(amounts):
            line = first_line + i
            time = f"2026-01-20T08:{line:02d}:00Z"
            rows.add(line, time=time, glucose="100", patient_id="P-1")
            events.add(line, kind="bolus", time=AT, units=amount, patient_id="P-1")
        return ParsedFile(rows.table(), events=events.table())

    chunks = [chunk(1, ["1", "2"]), chunk(3, ["2", "3"]), chunk(5, ["1", "bad"])]
    monkeypatch.setattr(chunked, "iter_file_chunks", lambda path, fmt, size: iter(list(chunks)))
    path = tmp_path / "big.csv"
    path.write_text("patient_id,time,glucose_mg_dl\n", encoding="utf-8")
    report = ingest_path(settings, path, fmt="csv", now=clock, chunk_readings=2)
    assert len(report.batch_ids) == 3
    assert (report.events_received, report.events_accepted) == (6, 3)
    assert (report.events_duplicates, report.events_quarantined) == (2, 1)
    raw = RawZone(Path(settings.lake.root))
    per_batch = [raw.batch(b).events()["units"].to_pylist() for b in report.batch_ids]
    assert per_batch == [[1.0, 2.0], [3.0], []]
    assert raw.batch(report.batch_ids[2]).manifest()["events"]["duplicates"] == 1


def test_the_report_and_the_cli_text_show_the_events(settings, tmp_path, clock, monkeypatch):
    from glucosestream.cli.render import ingest_text

    events = EventBuilder()
    events.add(1, kind="bolus", time=AT, units="1")
    events.add(2, kind="bolus", time=AT, units="-1")
    events.add(3, kind="note", time=AT, note="x")
    parsed_file(monkeypatch, events)
    report = ingest(settings, tmp_path, clock, patient_id="P-1")
    text = ingest_text(report)
    assert "events: received 3, accepted 1, duplicates 0, quarantined 1, notes dropped 1" in text
    assert "events quarantined because: units is negative (1)" in text
    shown = json.loads(json.dumps(dataclasses.asdict(report)))
    assert shown["events_received"] == 3
    assert shown["events_notes_dropped"] == 1
    again = ingest(settings, tmp_path, clock, patient_id="P-1")
    assert "0 readings and 3 events received, all duplicates" in ingest_text(again)


# ---- real files, now that the parsers write events --------------------------------------------
SAMPLES = DATA / "samples"
LATER = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)  # after every sample (Nightscout: 2026-04)


@pytest.mark.parametrize(
    "name",
    [
        "nightscout/cgm_format_nightscout_treatments.json",
        "nightscout/cgm_format_nightscout-data-with-treatments.csv",
        "tidepool/tidepool_event_doc_examples.json",
    ],
)
def test_sample_files_with_treatments_account_for_every_event(settings, tmp_path, name):
    path = sample(SAMPLES / name, tmp_path)
    report = ingest_path(settings, path, patient_id="P-1", tz="UTC", now=FixedClock(LATER))
    assert report.events_received > 0
    assert accounted(report) == report.events_received
    batch = only_batch(settings)
    assert batch.events().num_rows == report.events_accepted
    assert batch.event_quarantine().num_rows == report.events_quarantined
    if report.accepted:
        readings_keys = set(batch.readings()["patient_key"].to_pylist())
        assert set(batch.events()["patient_key"].to_pylist()) == readings_keys
    assert set(batch.events()["patient_key"].to_pylist()) == {
        patient_key(load_secret(settings), "P-1")
    }


def test_a_nightscout_csv_names_the_same_patient_key_in_its_readings_and_treatments(
    settings, tmp_path
):
    path = sample(SAMPLES / "nightscout/cgm_format_nightscout-data-with-treatments.csv", tmp_path)
    report = ingest_path(settings, path, patient_id="P-9", tz="UTC", now=FixedClock(LATER))
    assert report.accepted
    assert report.events_accepted
    batch = only_batch(settings)
    assert set(batch.events()["patient_key"].to_pylist()) == set(
        batch.readings()["patient_key"].to_pylist()
    )
    assert set(pa.concat_arrays([batch.events()["kind"].combine_chunks()]).to_pylist()) >= {"bolus"}


def test_an_input_of_only_skipped_records_is_refused_unwritten(
    settings, tmp_path, clock, monkeypatch
):
    from glucosestream.errors import InvalidInput

    parsed = ParsedFile(RowBuilder().table(), skipped=9, events=EventBuilder().table())
    monkeypatch.setattr(
        accept, "read_raw_rows", lambda path, fmt, detected=None: ("nightscout", parsed)
    )
    with pytest.raises(InvalidInput, match=r"none of its 9 records .* nothing was ingested"):
        ingest(settings, tmp_path, clock, patient_id="P-1")
    assert not RawZone(Path(settings.lake.root)).list_batches()
    header_only = ParsedFile(RowBuilder().table())  # no records at all: an empty batch, as before
    monkeypatch.setattr(
        accept, "read_raw_rows", lambda path, fmt, detected=None: ("csv", header_only)
    )
    assert ingest(settings, tmp_path, clock, patient_id="P-1").received == 0


def test_the_run_text_counts_the_events_of_the_run():
    from glucosestream.cli.render import run_text, runs_text
    from glucosestream.pipeline.run_report import RunReport, SetAside

    report = RunReport(
        run_id="r1",
        status="published",
        message="published",
        batches=2,
        readings_in=10,
        readings_new=10,
        duplicates=0,
        patient_days=1,
        checks=(),
        rejected=(),
        recovered=False,
        steps=(),
        duration_ms=5,
        events_in=7,
        events_new=4,
        events_duplicates=2,
        events_set_aside=(SetAside("b1", "event_in_future", 1),),
    )
    text = run_text(report)
    assert "  events: 7 in, 4 new, 2 duplicates, 1 set aside" in text
    assert "  set aside 1 events of batch b1: event_in_future" in text
    history = [
        {"run_id": "r1", "status": "published", "report": dataclasses.asdict(report), "checks": []}
    ]
    listed = runs_text(history)
    assert "    events: 7 in, 4 new, 2 duplicates, 1 set aside" in listed
    assert "    set aside 1 events of b1: event_in_future" in listed
    quiet = dataclasses.replace(report, events_in=0, events_set_aside=())
    assert "events" not in run_text(quiet)
