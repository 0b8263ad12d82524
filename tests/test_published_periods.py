"""Pages show a closed period's audited results (results.period_metrics, episodes, agp_profile
as published), the rolling summary's audited figures for the latest 14 complete days
(results.patient_summaries), and compute only what no run audited, labelled "not yet audited"."""

from __future__ import annotations

import datetime as dt
import json
import math

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from fastapi.testclient import TestClient

from glucosestream.access import create_token
from glucosestream.app import create_app
from glucosestream.dashboard.report import render_agp_html
from glucosestream.ingest import ingest_records
from glucosestream.ingest.identity import patient_key
from glucosestream.lake import Lakehouse
from glucosestream.metrics import (
    PERIOD_METRICS_SCHEMA,
    agp_profile,
    compute_period_metrics,
    episode_rows,
)
from glucosestream.pipeline import run_pipeline
from glucosestream.published import PublishedLake, audited_periods, period_results

from .conftest import SECRET

START = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)  # fixed fortnights start 2025-12-29, 2026-01-12, …
CLOSED = (dt.date(2026, 1, 12), dt.date(2026, 1, 25))  # closed: data goes on to 2026-02-03
OPEN = (dt.date(2026, 1, 26), dt.date(2026, 2, 8))  # the current fortnight
LATEST_14 = (dt.date(2026, 1, 21), dt.date(2026, 2, 3))  # the rolling summary's current window
PICKED = (dt.date(2026, 1, 20), dt.date(2026, 2, 2))  # spans the closed and the open one
NOW = dt.datetime(2026, 2, 4, 12, tzinfo=dt.UTC)
WRITTEN_MEAN = 321.5  # what the "published row" says, unlike any recomputation
WRITTEN_P50 = 222.0


def _readings(days: int) -> list[dict]:
    out = []
    for i in range(days * 288):
        glucose = 140 + 40 * math.sin(i / 288 * 2 * math.pi)
        if (i // 288) % 3 == 0 and 180 <= (i % 288) * 5 < 220:
            glucose = 55.0  # a 40-minute low every third night
        at = START + dt.timedelta(minutes=5 * i)
        out.append(
            {"patient_id": "P1", "time": at.isoformat(), "glucose_mg_dl": glucose, "tz": "UTC"}
        )
    return out


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    from glucosestream.config import IngestSettings, LakeSettings, Settings

    settings = Settings(
        lake=LakeSettings(root=str(tmp_path_factory.mktemp("periods") / "lake")),
        ingest=IngestSettings(pseudonym_secret=SECRET),
    )
    ingest_records(settings, _readings(30))
    report = run_pipeline(settings)
    assert report.status == "published"
    return settings, patient_key(SECRET.encode(), "P1"), report.run_id


@pytest.fixture
def written_rows(monkeypatch):
    """The published period rows as if written with other numbers than the readings give."""
    read_table = Lakehouse.read_table

    def altered(self, short_name, snapshot_id, row_filter=None):
        rows = read_table(self, short_name, snapshot_id, row_filter)
        if short_name == "periods" and rows.num_rows:
            mean = pa.array([WRITTEN_MEAN] * rows.num_rows, pa.float64())
            rows = rows.set_column(rows.schema.get_field_index("mean_mg_dl"), "mean_mg_dl", mean)
        if short_name == "summaries" and rows.num_rows:
            mean = pa.array([WRITTEN_MEAN] * rows.num_rows, pa.float64())
            rows = rows.set_column(rows.schema.get_field_index("mean_mg_dl"), "mean_mg_dl", mean)
        if short_name == "agp" and rows.num_rows:
            p50 = pa.array([WRITTEN_P50] * rows.num_rows, pa.float64())
            rows = rows.set_column(rows.schema.get_field_index("p50_mg_dl"), "p50_mg_dl", p50)
        return rows

    monkeypatch.setattr(Lakehouse, "read_table", altered)


def _results(settings, key, window):
    run = PublishedLake(settings).current()
    since = dt.datetime.combine(window[0], dt.time(), dt.UTC) - dt.timedelta(days=1)
    readings = run.readings([key], since)
    return run, readings, period_results(run, key, *window, readings=readings, now=NOW)


def test_a_closed_period_is_read_from_the_published_tables(lake, written_rows):
    settings, key, run_id = lake
    run, readings, results = _results(settings, key, CLOSED)
    assert results.audited
    assert results.audited_by == run_id
    assert results.metrics["mean_mg_dl"].to_pylist() == [WRITTEN_MEAN]
    assert set(results.agp["p50_mg_dl"].to_pylist()) == {WRITTEN_P50}
    # A recomputation from the same readings gives other numbers: the page did not recompute.
    window = pa.table(
        {"patient_key": [key], "period_start": [CLOSED[0]], "period_end": [CLOSED[1]]},
        pa.schema([("patient_key", pa.string()), ("period_start", pa.date32()),
                   ("period_end", pa.date32())]),
    )  # fmt: skip
    again = compute_period_metrics(readings, window, run_id="x", computed_at=NOW)
    assert again["mean_mg_dl"][0].as_py() != pytest.approx(WRITTEN_MEAN)
    assert results.episodes.num_rows > 0
    assert set(results.episodes["period_start"].to_pylist()) == {CLOSED[0]}
    assert (CLOSED[0], CLOSED[1]) in audited_periods(run, key)


def test_the_latest_14_complete_days_take_their_figures_from_the_rolling_summary(
    lake, written_rows
):
    settings, key, run_id = lake
    _, _, results = _results(settings, key, LATEST_14)
    assert results.audited
    assert results.audited_by == run_id
    assert results.metrics["mean_mg_dl"].to_pylist() == [WRITTEN_MEAN]  # read, not recomputed
    assert results.metrics.schema.names == PERIOD_METRICS_SCHEMA.names  # period_metrics' shape
    assert results.agp.num_rows > 0  # the curves of a rolling window are drawn from readings
    assert pc.max(results.agp["p50_mg_dl"]).as_py() != WRITTEN_P50


@pytest.mark.parametrize("window", [OPEN, PICKED], ids=["open-period", "spans-both"])
def test_a_window_no_run_audited_is_computed_and_marked(lake, written_rows, window):
    settings, key, _ = lake
    _, readings, results = _results(settings, key, window)
    assert not results.audited
    assert results.audited_by is None
    periods = pa.table(
        {"patient_key": [key], "period_start": [window[0]], "period_end": [window[1]]},
        pa.schema([("patient_key", pa.string()), ("period_start", pa.date32()),
                   ("period_end", pa.date32())]),
    )  # fmt: skip
    expected = compute_period_metrics(readings, periods, run_id="x", computed_at=NOW)
    assert results.metrics["mean_mg_dl"].equals(expected["mean_mg_dl"])
    assert pc.max(results.agp["p50_mg_dl"]).as_py() != WRITTEN_P50


def _page_data(html: str) -> dict:
    marker = '<script id="page-data" type="application/json">'
    start = html.index(marker) + len(marker)
    return json.loads(html[start : html.index("</script>", start)])


def test_the_patient_page_labels_its_period(lake, written_rows):
    settings, key, run_id = lake
    admin = create_token(settings.lake, "admin", label="a", now=NOW)
    with TestClient(create_app(settings, clock=lambda: NOW)) as client:
        origin = str(client.base_url).rstrip("/")
        client.post("/login", data={"token": admin}, headers={"Origin": origin})
        latest = client.get(f"/patients/{key}")
        closed = client.get(f"/patients/{key}?from={CLOSED[0]}&to={CLOSED[1]}")
        picked = client.get(f"/patients/{key}?from={PICKED[0]}&to={PICKED[1]}")
    assert latest.status_code == closed.status_code == picked.status_code == 200
    # the latest 14 complete days: the rolling summary the run wrote
    assert "Not yet audited" not in latest.text
    assert _page_data(latest.text)["audited"] is True
    assert run_id in latest.text
    assert "Not yet audited" in picked.text
    assert 'data-audited="false"' in picked.text
    assert _page_data(picked.text)["audited"] is False
    # The latest days' page links the closed periods it shows, each to its audited figures.
    assert f"?from={CLOSED[0]}&amp;to={CLOSED[1]}" in latest.text
    assert "Not yet audited" not in closed.text
    assert "<strong>Audited</strong>" in closed.text
    assert run_id in closed.text
    assert _page_data(closed.text)["audited"] is True


def test_the_agp_report_shows_audited_numbers_for_a_closed_period(lake, written_rows):
    settings, key, _ = lake
    closed = render_agp_html(settings, key, end=CLOSED[1], now=NOW)
    latest = render_agp_html(settings, key, now=NOW)  # the rolling summary's window
    picked = render_agp_html(settings, key, end=PICKED[1], now=NOW)
    for audited in (closed, latest):
        assert "<strong>Audited</strong>" in audited
        # The published mean, as the statistics table shows it.
        assert f"<th>Mean glucose</th><td>{WRITTEN_MEAN:.0f} mg/dL</td>" in audited
        assert '"audited": true' in audited
    assert f"<th>Mean glucose</th><td>{WRITTEN_MEAN:.0f} mg/dL</td>" not in picked
    assert "Not yet audited" in picked
    assert '"audited": false' in picked


def test_the_audited_row_is_what_the_page_computed_before(lake):
    """Unaltered, a closed period's published row holds the numbers a recomputation from the
    same published readings gives: reading it changes where they come from, not what shows."""
    settings, key, _ = lake
    _, readings, results = _results(settings, key, CLOSED)
    assert results.audited
    window = pa.table(
        {"patient_key": [key], "period_start": [CLOSED[0]], "period_end": [CLOSED[1]]},
        pa.schema([("patient_key", pa.string()), ("period_start", pa.date32()),
                   ("period_end", pa.date32())]),
    )  # fmt: skip
    again = compute_period_metrics(readings, window, run_id="x", computed_at=NOW)
    run_columns = ["run_id", "computed_at"]
    assert results.metrics.drop_columns(run_columns).equals(again.drop_columns(run_columns))
    curves = agp_profile(readings, window, run_id="x", computed_at=NOW).drop_columns(run_columns)
    assert results.agp.drop_columns(run_columns).equals(curves)
    order = [("start_local", "ascending"), ("type", "ascending"), ("level", "ascending")]
    episodes = episode_rows(readings, window, run_id="x", computed_at=NOW)
    assert (
        results.episodes.drop_columns(run_columns)
        .sort_by(order)
        .equals(episodes.drop_columns(run_columns).sort_by(order))
    )
