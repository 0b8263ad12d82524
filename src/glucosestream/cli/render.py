"""Human-readable text of the command reports (``--json`` prints the reports themselves)."""

from __future__ import annotations

from typing import Any

from glucosestream.ingest import IngestReport
from glucosestream.metrics import ALL, CONSENSUS
from glucosestream.metrics.spec import BY_NAME
from glucosestream.metrics.summary import TARGETS, PatientSummary
from glucosestream.pipeline import RunReport
from glucosestream.published import WindowSummary

__all__ = [
    "daily_table",
    "ingest_text",
    "period_table",
    "run_text",
    "runs_text",
    "summary_table",
    "window_summary_text",
]


def ingest_text(r: IngestReport) -> str:
    if r.already_ingested_as:
        events = f" and {r.events_received} events" if r.events_received else ""
        return (
            f"ingest {r.source}: already ingested as batch {r.already_ingested_as}; "
            f"{r.received} readings{events} received, all duplicates, nothing written"
        )
    text = (
        f"ingest {r.source}: received {r.received}, accepted {r.accepted}, "
        f"duplicates {r.duplicates}, quarantined {r.quarantined} (batch {r.batch_id})"
    )
    if r.top_reasons:
        text += "\n  quarantined because: " + "; ".join(f"{why} ({n})" for why, n in r.top_reasons)
    if r.events_received:
        text += (
            f"\n  events: received {r.events_received}, accepted {r.events_accepted}, "
            f"duplicates {r.events_duplicates}, quarantined {r.events_quarantined}, "
            f"notes dropped {r.events_notes_dropped}"
        )
    if r.events_top_reasons:
        text += "\n  events quarantined because: " + "; ".join(
            f"{why} ({n})" for why, n in r.events_top_reasons
        )
    return text


def run_text(r: RunReport) -> str:
    if r.status == "noop":
        return f"run {r.run_id}: {r.message}"
    lines = [
        f"run {r.run_id}: {r.message} — {r.batches} batches, {r.readings_in} readings in, "
        f"{r.readings_new} new, {r.duplicates} duplicates, {r.patient_days} patient-days "
        f"in {r.duration_ms} ms"
    ]
    if r.events_in:
        lines.append(
            f"  events: {r.events_in} in, {r.events_new} new, {r.events_duplicates} "
            f"duplicates, {r.events_set_aside_rows} set aside"
        )
    lines += [f"  check {c.name}: {_verdict(c.passed, c.detail)}" for c in r.checks]
    lines += [f"  rejected batch {b.batch_id}: {b.reason}" for b in r.rejected]
    lines += [
        f"  set aside {s.rows} readings of batch {s.batch_id}: {s.reason}" for s in r.set_aside
    ]
    lines += [
        f"  set aside {s.rows} events of batch {s.batch_id}: {s.reason}" for s in r.events_set_aside
    ]
    if r.steps:
        lines.append("  steps: " + ", ".join(f"{s.step} {s.duration_ms} ms" for s in r.steps))
    return "\n".join(lines)


def _verdict(passed: bool, detail: str) -> str:
    """ok; a passing warning-level check's finding; or FAILED with the detail."""
    return detail if passed else "FAILED — " + detail


def runs_text(history: list[dict[str, Any]]) -> str:
    if not history:
        return "no runs yet; run `glucosestream run`"
    lines = []
    for run in history:
        report = run["report"] or {}
        lines.append(
            f"{run['run_id']}  {run['status']:<9}  {report.get('readings_in', 0):>9} in  "
            f"{report.get('readings_new', 0):>9} new  {report.get('duplicates', 0):>7} dup  "
            f"{report.get('patient_days', 0):>6} days  {report.get('duration_ms', 0):>7} ms"
        )
        if report.get("events_in"):
            lines.append(
                f"    events: {report['events_in']} in, {report.get('events_new', 0)} new, "
                f"{report.get('events_duplicates', 0)} duplicates, "
                f"{sum(s['rows'] for s in report.get('events_set_aside') or [])} set aside"
            )
        steps = report.get("steps") or []
        if steps:
            lines.append("    " + ", ".join(f"{s['step']} {s['duration_ms']} ms" for s in steps))
        if run["status"] in ("failed", "abandoned") and report.get("message"):
            lines.append(f"    {report['message']}")
        said = [c for c in run["checks"] if not c["passed"] or c["detail"] != "ok"]
        lines += [
            f"    check {c['check_name']}: {_verdict(c['passed'], c['detail'])}" for c in said
        ]
        lines += [
            f"    rejected {b['batch_id']}: {b['reason']}" for b in report.get("rejected", [])
        ]
        lines += [
            f"    set aside {s['rows']} readings of {s['batch_id']}: {s['reason']}"
            for s in report.get("set_aside", [])
        ]
        lines += [
            f"    set aside {s['rows']} events of {s['batch_id']}: {s['reason']}"
            for s in report.get("events_set_aside") or []
        ]
    return "\n".join(lines)


def summary_table(rows: list[PatientSummary]) -> str:
    head = (
        f"{'patient key':<34}{'days':>5}{'mean':>7}{'<70%':>7}{'70-180%':>9}{'>180%':>7}"
        f"{'GMI%':>6}{'active%':>9}"
    )
    body = [
        f"{s.patient_key:<34}{s.days:>5}{_fmt(s.mean_mg_dl, '.0f'):>7}"
        f"{_fmt(s.pct_below_70, '.1f'):>7}{_fmt(s.pct_70_180, '.1f'):>9}"
        f"{_fmt(s.pct_above_180, '.1f'):>7}{_fmt(s.gmi_pct, '.1f'):>6}"
        f"{_fmt(s.pct_active, '.0f'):>9}"
        for s in rows
    ]
    return "\n".join([head, *body]) if body else "no published metrics"


def daily_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no published metrics in that range"
    head = (
        f"{'date':<11}{'n':>5}{'mean':>7}{'SD':>6}{'CV%':>6}{'GMI%':>6}{'<54%':>6}{'<70%':>6}"
        f"{'70-180%':>8}{'>180%':>7}{'>250%':>7}{'active%':>8}"
        f"{'bolusU':>8}{'basalU':>8}{'totalU':>8}{'carbsg':>8}"
    )
    body = [
        f"{r['date']!s:<11}{r['readings']:>5}{_fmt(r['mean_mg_dl'], '.1f'):>7}"
        f"{_num(r['sd_mg_dl']):>6}{_num(r['cv_pct']):>6}{_fmt(r['gmi_pct'], '.2f'):>6}"
        f"{_fmt(r['pct_below_54'], '.1f'):>6}{_fmt(r['pct_below_70'], '.1f'):>6}"
        f"{_fmt(r['pct_70_180'], '.1f'):>8}{_fmt(r['pct_above_180'], '.1f'):>7}"
        f"{_fmt(r['pct_above_250'], '.1f'):>7}"
        f"{_fmt(r['pct_active'] if r['readings'] else None, '.0f'):>8}"
        + "".join(f"{_fmt(r.get(c), '.1f'):>8}" for c in _DAY_EVENT_COLUMNS)
        + ("  partial: not counted" if r.get("partial") else "")
        for r in rows
    ]
    return "\n".join([head, *body])


# The daily insulin and carbohydrate columns the day table shows (metrics.EVENT_COLUMNS).
_DAY_EVENT_COLUMNS = ("bolus_u", "basal_u", "insulin_total_u", "carbs_g")


def period_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no closed 14-day periods published yet (a period closes when later data arrives)"
    head = (
        f"{'patient key':<34}{'period':<24}{'n':>6}{'mean':>7}{'CV%':>6}{'GMI%':>6}"
        f"{'<70%':>6}{'70-180%':>8}{'GRI':>6}"
    )
    body = [
        f"{r['patient_key']:<34}{r['period_start']!s} - {r['period_end']!s} "
        f"{r['readings']:>6}{_num(r['mean_mg_dl']):>7}{_num(r['cv_pct']):>6}"
        f"{_num(r['gmi_pct']):>6}{_num(r['pct_below_70']):>6}{_num(r['pct_70_180']):>8}"
        f"{_num(r['gri']):>6}"
        for r in rows
    ]
    return "\n".join([head, *body])


_NAME_WIDTH = max(len(n) for n in ALL) + 2
_VALUE_WIDTH = _NAME_WIDTH + 16


def window_summary_text(summary: WindowSummary) -> str:
    """One window's summary: the consensus set against its targets, the research catalog,
    then the sufficiency of the data."""
    s = summary
    partial = f"; {s.partial_day} is partial: shown, not counted" if s.partial_day else ""
    source = (
        f"audited (the published period of run {s.audited_by})"
        if s.audited
        else "computed from the published readings (not audited)"
    )
    lines = [f"summary {s.start} to {s.end}: {s.days} days{partial}", f"  {source}"]
    targets = {t.metric: t for t in TARGETS}
    lines.append(f"{'consensus set':<{_VALUE_WIDTH + 2}}{'target':<12}met")
    for name in CONSENSUS:
        target = targets.get(name)
        met = target.met(s.metrics[name]) if target else None
        mark = "" if met is None else ("yes" if met else "NO")
        text = target.text if target else ""
        lines.append(
            f"  {_metric_text(name, s.metrics[name]):<{_VALUE_WIDTH}}{text:<12}{mark}".rstrip()
        )
    lines.append("research catalog")
    lines += [f"  {_metric_text(n, s.metrics[n])}" for n in ALL if n not in CONSENSUS]
    lines += _event_means_lines(s.event_means)
    active, days, sufficient = (s.metrics[n] for n in ("active_pct", "days", "sufficient_14d"))
    lines.append("sufficiency")
    lines.append(
        f"  sensor active {_num(active)} % over {_num(days)} days of data; "
        + ("enough" if sufficient else "NOT enough")
        + " for a 14-day report (>= 14 days, >= 70 % active)"
    )
    return "\n".join(lines)


def _metric_text(name: str, value: object) -> str:
    unit = BY_NAME[name].unit
    if value is None:
        shown = "-"
    elif isinstance(value, bool):
        shown = "yes" if value else "no"
    elif isinstance(value, float):
        shown = f"{value:.4g}" if abs(value) < 1000 else f"{value:.0f}"
    else:
        shown = str(value)
    suffix = f" {unit}" if unit not in ("1", "count", "flag", "local time", "A-E") else ""
    return f"{name:<{_NAME_WIDTH}}{shown}{suffix}"


def _num(value: float | None) -> str:
    return _fmt(value, ".1f")


def _fmt(value: float | None, spec: str) -> str:
    """``value`` formatted by ``spec``, or "-" where there is none (NULL or NaN: a day of
    events and no readings has no glucose figure; a day without insulin records no bolus)."""
    return "-" if value is None or value != value else format(value, spec)


# ---- plumbing ----------------------------------------------------------------------------


def _event_means_lines(means: dict[str, Any]) -> list[str]:
    """The window's insulin and carbs: each a mean per day over the days that recorded it."""
    shown = [
        ("bolus insulin", "bolus_u_per_day", "U/day", "insulin_days"),
        ("basal insulin", "basal_u_per_day", "U/day", "basal_days"),
        ("total insulin", "insulin_total_u_per_day", "U/day", "basal_days"),
        ("carbohydrate", "carbs_g_per_day", "g/day", "carbs_days"),
        ("boluses", "boluses_per_day", "/day", "insulin_days"),
        ("automated delivery", "automated_pct", "%", "automated_days"),
    ]
    if all(means.get(column) is None for _, column, _, _ in shown):
        return []
    lines = ["insulin and carbs (mean per day over the days that recorded each)"]
    for label, column, unit, days in shown:
        value = means.get(column)
        text = "not recorded" if value is None else f"{value:.1f} {unit} ({means.get(days)} days)"
        lines.append(f"  {label:<20}{text}")
    return lines
