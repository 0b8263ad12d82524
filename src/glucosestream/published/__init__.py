"""The read side: every read of the published lake goes through here.

The pages, the JSON API, the Nightscout GET and the command line read the lake only through a
``PublishedLake``: each request asks the metadata store once which run was published last, and
gets that run's ``PublishedRun``, whose snapshot ids are pinned, so everything one request reads
comes from the same run even while another run publishes. What is derived from a run (the daily
metrics indexed by patient, the triage aggregate) is cached on it until a newer run is published.
The patient page and the AGP report take a period's numbers from the audited results tables and
compute only the open period (or another window no run audited) on the fly: ``period_results``.
The summary of any window of days (the consensus set, the research catalog, sufficiency) is
``window_summary``; the rolling summary written at publish is read with ``PublishedRun.summaries``.
A patient's recent readings as followers see them, published and accepted since the last run,
are ``merged_readings`` (``live_merge``).
"""

from __future__ import annotations

from glucosestream.published.daily_index import DailyIndex
from glucosestream.published.live_merge import merged_readings, warm_tails
from glucosestream.published.period_results import (
    PeriodResults,
    audited_periods,
    period_results,
)
from glucosestream.published.pinned_run import PublishedRun
from glucosestream.published.published_lake import PublishedLake
from glucosestream.published.window_summary import WindowSummary, window_summary

__all__ = [
    "DailyIndex",
    "PeriodResults",
    "PublishedLake",
    "PublishedRun",
    "WindowSummary",
    "audited_periods",
    "merged_readings",
    "period_results",
    "warm_tails",
    "window_summary",
]
