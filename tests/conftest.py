from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from numba.core import event as numba_event
from pyiceberg.io.pyarrow import PyArrowFileIO

from glucosestream.config import EngineSettings, IngestSettings, LakeSettings, Settings
from glucosestream.engines import DuckDBEngine

DATA = Path(__file__).parent / "data"
SHARED = Path(__file__).resolve().parents[2] / "shared"
SECRET = "test-secret-0123456789abcdef0123456789abcdef"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        lake=LakeSettings(root=str(tmp_path / "lake")),
        ingest=IngestSettings(pseudonym_secret=SECRET),
    )


@pytest.fixture
def duck() -> Iterator[DuckDBEngine]:
    engine = DuckDBEngine(EngineSettings())
    yield engine
    engine.close()


@pytest.fixture
def cli() -> CliRunner:
    return CliRunner()


class FixedClock:
    """An injected clock: returns a fixed instant, advanced by one second per call."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        self.now += dt.timedelta(seconds=1)
        return self.now


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(dt.datetime(2026, 2, 1, 12, 0, tzinfo=dt.UTC))


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(params=["in-keys", "broad"])
def key_filter(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with both ways the lake narrows to a run's patients: an In over their keys,
    and (as for a run touching many patients) a days-only filter narrowed in memory."""
    if request.param == "broad":
        monkeypatch.setattr("glucosestream.lake.scope.MANY_KEYS", 1)
    return str(request.param)


@pytest.fixture
def opened(monkeypatch):
    """Counts the data files pyiceberg opens for reading."""
    counts: Counter[str] = Counter()
    original = PyArrowFileIO.new_input

    def new_input(self, location):
        if "/data/" in location:
            counts[location] += 1
        return original(self, location)

    monkeypatch.setattr(PyArrowFileIO, "new_input", new_input)
    return counts


# Modules of the slow tier written before its markers: they need the test services (S3/Ceph,
# PostgreSQL), the browser, or real server and CLI processes. `make test` runs them last (see
# the Makefile); new slow tests say so with a marker of their own.
SLOW_MODULES = frozenset(
    {
        "test_browser_dashboard.py",
        "test_browser_clinic.py",
        "test_crash_safety.py",
        "test_postgres.py",
        "test_s3.py",
        "test_serve.py",
    }
)
# The slow tier's markers: those pyproject.toml registers as "(slow tier)".
_SLOW_MARKERS: set[str] = set()

# The fast tier (`make test-fast`, marker `fast`): a little of every module, under a minute on
# two busy cores. The rule: every in-process test is in it, except
#   - the tests of HEAVY_MODULES, suites built to be exhaustive: fuzzing, the hardening
#     findings of HTTP ingest and pipelines, every role x route, end-to-end pipeline runs,
#     lake maintenance, moto's Glue; and
#   - the tests named in HEAVY_TESTS: each measured at 0.5 s or more, setup included
#     (`pytest --durations=0 -p no:randomly` on the 2-core machine, 2026-12-05).
# A new test joins the fast tier; the summary of a run names any fast test that took over
# _FAST_LIMIT_S, to be listed here (tests/test_test_tiers.py checks that the names are real).
_FAST_LIMIT_S = 1.0  # twice the rule's 0.5 s, so a busy machine does not flag borderline tests
HEAVY_MODULES = frozenset(
    {
        "test_always_on.py",
        "test_cli_events.py",
        "test_cli_metrics_summary.py",
        "test_comparison_overlay.py",
        "test_export_omop.py",
        "test_export_tidy.py",
        "test_export_events.py",
        "test_erase_events.py",
        "test_events_samples_lake.py",
        "test_ingest_profiles.py",
        "test_pipeline_events.py",
        "test_authz_matrix.py",
        "test_aws_e2e.py",
        "test_aws_moto.py",
        "test_aws_stepwise.py",
        "test_aws_terraform.py",
        "test_cli_scale_out.py",
        "test_fuzz_formats.py",
        "test_fuzz_http.py",
        "test_glue.py",
        "test_hardening_http.py",
        "test_hardening_ingest.py",
        "test_hardening_pipeline.py",
        "test_rolling_summary.py",
        "test_window_summary.py",
        "test_lake_compaction.py",
        "test_lake_replace.py",
        "test_maintenance.py",
        "test_pipeline_buckets.py",
        "test_pipeline_e2e.py",
        "test_pipeline_periods.py",
        "test_pipeline_sessions.py",
        "test_scale_out.py",
        "test_synth_realism.py",
        "test_synth_roundtrip.py",
        "test_task_executor.py",
    }
)
HEAVY_TESTS: dict[str, frozenset[str]] = {
    "test_agp_window.py": frozenset(
        {
            "test_an_end_on_the_partial_day_is_the_last_complete_day",
            "test_in_mmol_the_agp_report_says_no_mg_dl",
            "test_in_mmol_the_patient_page_says_no_mg_dl",
            "test_the_agp_counts_14_complete_days_and_names_the_partial_one",
            "test_the_page_draws_the_smoothed_curves",
            "test_the_patient_page_shows_the_partial_day_apart",
            "test_the_report_names_the_patient_by_their_id",
            "test_the_report_routes_take_a4_or_letter_only",
            "test_without_an_id_the_report_leaves_name_and_dob_lines",
        }
    ),
    "test_alerts_evaluate.py": frozenset(
        {"test_level2_alerts_fire_and_clear_when_find_episodes_says"}
    ),
    "test_alert_engine.py": frozenset(
        {
            "test_a_restart_refires_nothing",
            "test_random_traces_give_well_formed_histories_and_a_restart_changes_nothing",
            "test_the_thread_ticks_by_itself",
        }
    ),
    "test_cli_export.py": frozenset(
        {
            "test_export_all_writes_a_bundle_per_patient_named_by_the_id_as_ingested",
            "test_refusals_are_one_line_and_write_nothing",
        }
    ),
    "test_dashboard_now.py": frozenset(
        {
            "test_the_panel_merges_the_published_readings_with_those_posted_since",
            "test_always_on_a_low_reading_posted_fires_alerts_shown_at_once",
        }
    ),
    "test_events_round_trip.py": frozenset(
        {
            "test_device_export_events_read_back_as_simulated",
            "test_exported_events_reach_curated_events_as_simulated",
        }
    ),
    "test_export_fhir.py": frozenset(
        {
            "test_a_window_exports_only_its_local_days",
            "test_an_exported_patient_validates_and_its_summary_is_the_window_summary",
            "test_the_exported_bundle_ingested_into_a_fresh_lake_gives_the_same_readings",
        }
    ),
    "test_ingest_events.py": frozenset(
        {
            "test_every_hostile_event_is_accepted_quarantined_a_duplicate_or_a_dropped_note",
        }
    ),
    "test_pages_events.py": frozenset(
        {
            "test_both_units_render_and_mmol_says_no_mg_dl",
            "test_ingested_treatments_reach_the_page",
            "test_the_agp_report_stays_glucose_only",
            "test_the_page_summarises_insulin_and_carbs_of_the_days_shown",
            "test_the_summary_json_twin_has_the_same_figures",
            "test_the_traces_carry_bolus_and_carb_markers_with_text",
            "test_without_events_nothing_is_marked_and_nothing_is_zero",
        }
    ),
    "test_patient_names.py": frozenset(
        {
            "test_the_label_never_reaches_the_lake_and_is_erased_with_the_patient",
        }
    ),
    "test_patient_search.py": frozenset(
        {
            "test_a_clinician_finds_a_patient_by_the_id_as_ingested",
        }
    ),
    "test_privacy_bounds.py": frozenset(
        {
            "test_a_private_mean_lies_in_its_bounds_whatever_the_values",
            "test_every_released_value_lies_in_its_bounds_for_any_cohort",
        }
    ),
    "test_published_events.py": frozenset(
        {
            "test_a_lake_with_readings_only_reads_no_events",
        }
    ),
    "test_treatments_read_api.py": frozenset(
        {
            "test_posted_treatments_come_back_after_a_run",
        }
    ),
    "test_triage_clinic.py": frozenset(
        {
            "test_a_clinician_sees_only_their_clinic_even_when_filtering_another",
            "test_a_new_run_gets_the_pass_made_before_requests_when_triage_was_in_use",
            "test_csv_export_has_the_rows_is_authorised_audited_and_formula_safe",
            "test_filters_by_flag_and_clinic_and_sorts",
            "test_last_upload_is_the_newest_batch_received_even_before_a_run",
            "test_triage_shows_the_rolling_summary_written_at_publish",
            "test_the_page_names_each_flag_and_range_in_words",
            "test_triage_flags_bars_and_last_upload_on_a_lake",
        }
    ),
    "test_webhook_delivery.py": frozenset(
        {
            "test_two_workers_over_one_store_never_send_a_row_twice",
            "test_post_delivers_signed_over_http_and_follows_no_redirect",
            "test_post_reports_refused_and_timed_out_connections",
            "test_a_fire_committed_through_the_alert_store_is_sent_at_once_on_wake",
            "test_failures_are_retried_with_backoff_then_dead",
        }
    ),
    "test_app.py": frozenset({"test_patient_page_and_json_show_published_metrics"}),
    "test_athena_views.py": frozenset(
        {
            "test_athena_can_query_every_column_of_the_lake",
            "test_daily_summaries_are_the_published_daily_metrics",
            "test_period_summaries_are_the_audited_period_results",
            "test_the_views_read_what_the_last_run_published",
            "test_triage_list_gives_the_window_and_each_patients_newest_audited_period",
            "test_triage_list_is_the_dashboards_triage_in_its_order",
        }
    ),
    "test_cli.py": frozenset(
        {
            "test_demo_without_serving_works_for_an_empty_or_new_folder",
            "test_report_and_audit_commands",
            "test_synth_ingest_run_metrics_with_json",
        }
    ),
    "test_dashboard_lake.py": frozenset({"test_triage_orders_by_risk_and_counts_the_window"}),
    "test_formats_layouts.py": frozenset(
        {
            "test_dexcom_german_export",
            "test_dexcom_mmol_export_with_low_and_high_words",
            "test_libreview_german_headers",
            "test_libreview_row_split_by_an_unquoted_decimal_comma_is_quarantined",
            "test_libreview_scan_in_a_gap_of_the_historic_record_is_kept_flagged",
            "test_libreview_us_export_reads_month_first_with_am_pm",
        }
    ),
    "test_formats_samples.py": frozenset(
        {
            "test_dexcom_clarity_samples_give_every_egv_once",
            "test_iglu_plain_csv_samples",
            "test_libreview_samples_count_historic_readings_and_only_uncovered_scans",
        }
    ),
    "test_hardening_cli.py": frozenset(
        {"test_finding10_every_module_imports_and_help_runs_without_dev_packages"}
    ),
    "test_ingest_dedupe.py": frozenset(
        {
            "test_overlapping_exports_give_each_reading_once",
            "test_the_same_export_twice_is_one_set_of_readings",
        }
    ),
    "test_ingest_fastpath.py": frozenset({"test_the_fast_path_never_disagrees_with_the_query"}),
    "test_ingest_identity.py": frozenset(
        {"test_no_name_birth_date_or_serial_of_any_sample_reaches_the_lake"}
    ),
    "test_lake_tables.py": frozenset(
        {
            "test_a_new_column_is_added_to_a_lake_that_has_data",
            "test_readings_are_partitioned_by_key_prefix_and_day",
        }
    ),
    "test_metrics.py": frozenset({"test_sql_daily_metrics_equal_the_reference_implementation"}),
    "test_metrics_agp_loess.py": frozenset({"test_smoothed_agp_is_close_to_iglu_plot_agp"}),
    "test_metrics_properties.py": frozenset(
        {
            "test_bands_sum_to_100",
            "test_exact_duplicate_rows_do_not_matter",
            "test_gri_rises_when_a_reading_falls_below_54",
            "test_raising_glucose_raises_mean_gmi_hbgi_and_lowers_lbgi",
            "test_row_order_does_not_matter",
        }
    ),
    "test_metrics_speed.py": frozenset(
        {"test_grid_filled_reading_by_reading_equals_the_reference"}
    ),
    "test_privacy_release.py": frozenset(
        {
            "test_a_cohort_under_the_minimum_is_refused_by_route_and_page",
            "test_count_noise_scale_is_one_over_epsilon",
            "test_mean_noise_is_laplace_calibrated_to_epsilon",
            "test_release_route_refuses_over_budget_with_the_error_shape",
            "test_the_page_shows_a_release_in_bounds_with_its_margin",
        }
    ),
    "test_quality_gate.py": frozenset(
        {
            "test_a_batch_whose_ingest_died_before_it_was_recorded_is_still_loaded",
            "test_a_merge_that_loses_a_reading_publishes_nothing",
            "test_a_reading_outside_the_gate_is_set_aside_and_its_file_can_come_back",
            "test_unpublished_snapshots_are_rolled_back_by_the_next_run",
        }
    ),
    "test_synth_exporters.py": frozenset(
        {
            "test_device_exports_are_deterministic",
            "test_dexcom_clarity_layout_and_round_trip",
            "test_fhir_bundle_layout_and_round_trip",
            "test_libreview_layout_and_round_trip",
            "test_nightscout_entries_layout_and_round_trip",
            "test_tidepool_cbg_layout_and_round_trip",
        }
    ),
    "test_synth_generator.py": frozenset(
        {
            "test_chunking_changes_nothing_and_patients_do_not_depend_on_cohort_size",
            "test_sensor_sessions_leave_warm_up_gaps_and_dropouts_leave_holes",
        }
    ),
}


def _in_fast_tier(item: pytest.Item) -> bool:
    if any(item.get_closest_marker(name) for name in _SLOW_MARKERS):
        return False
    module = item.path.name
    if module in HEAVY_MODULES:
        return False
    function = getattr(item, "originalname", item.name)
    return function not in HEAVY_TESTS.get(module, frozenset())


# The fast-tier tests collected, and the seconds each took (setup, call and teardown).
_FAST_IDS: set[str] = set()
_FAST_SECONDS: Counter[str] = Counter()


def pytest_configure(config: pytest.Config) -> None:
    for line in config.getini("markers"):
        name, _, text = line.partition(":")
        if "(slow tier)" in text:
            _SLOW_MARKERS.add(name.strip())
    numba_event.register("numba:compile", _CompileListener())


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
        if _in_fast_tier(item):
            item.add_marker(pytest.mark.fast)
            _FAST_IDS.add(item.nodeid)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.nodeid in _FAST_IDS:
        _FAST_SECONDS[report.nodeid] += report.duration


# What the verification suite did (fuzz inputs generated, schemathesis cases, soak requests),
# by line of the closing summary; each counting test adds to it.
VERIFICATION_COUNTS: Counter[str] = Counter()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    _report_slow_fast_tests(terminalreporter)
    _report_compiled_kernels(terminalreporter)
    if not VERIFICATION_COUNTS:
        return
    terminalreporter.write_sep("=", "verification suite counts")
    for name, count in sorted(VERIFICATION_COUNTS.items()):
        terminalreporter.write_line(f"{name}: {count:,}")
    fuzz = sum(n for name, n in VERIFICATION_COUNTS.items() if name.startswith("fuzz inputs "))
    if fuzz:
        terminalreporter.write_line(f"fuzz inputs, all targets: {fuzz:,}")


def _report_slow_fast_tests(terminalreporter: pytest.TerminalReporter) -> None:
    slow = sorted((-s, nodeid) for nodeid, s in _FAST_SECONDS.items() if s > _FAST_LIMIT_S)
    if not slow:
        return
    terminalreporter.write_sep("=", f"fast-tier tests over {_FAST_LIMIT_S:g} s")
    for seconds, nodeid in slow:
        terminalreporter.write_line(f"{-seconds:6.2f}s {nodeid}")
    terminalreporter.write_line(
        "list them in HEAVY_TESTS (tests/conftest.py) if they are that slow on a quiet machine"
    )


# Metric kernels numba compiled during the session: none when the warm-up ran first (the
# Makefile runs it before every tier); a cold or stale cache otherwise puts the compilation on
# whichever test first calls a kernel, and this names them.
_COMPILED: list[str] = []


class _CompileListener(numba_event.Listener):  # type: ignore[misc]
    def on_start(self, event: numba_event.Event) -> None:
        function = getattr((event.data or {}).get("dispatcher"), "py_func", None)
        module = getattr(function, "__module__", "")
        if module.startswith("glucosestream."):  # not numba's own helpers, compiled every time
            _COMPILED.append(f"{module.rsplit('.', 1)[-1]}.{function.__qualname__}")

    def on_end(self, event: numba_event.Event) -> None:
        pass


def _report_compiled_kernels(terminalreporter: pytest.TerminalReporter) -> None:
    if not _COMPILED:
        return
    names = sorted(set(_COMPILED))
    terminalreporter.write_sep("=", f"numba compiled {len(_COMPILED)} metric kernels in the tests")
    terminalreporter.write_line(", ".join(names[:12]) + (", ..." if len(names) > 12 else ""))
    terminalreporter.write_line(
        "the kernel cache was cold or stale (`make test-fast` and `make test` run "
        "`python -m glucosestream.metrics.warmup` first), or the warm-up does not compile "
        "these signatures; cached now, they load at once the next time"
    )
