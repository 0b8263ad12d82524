from __future__ import annotations

import importlib
import pkgutil

import glucosestream


def isort_order(names):
    """The order ruff's RUF022 keeps: CONSTANTS, then Classes, then functions."""
    return sorted(names, key=lambda n: (0 if n.isupper() else 1 if n[0].isupper() else 2, n))


def test_all_is_sorted_and_every_name_exists():
    assert list(glucosestream.__all__) == isort_order(glucosestream.__all__)
    for name in glucosestream.__all__:
        assert hasattr(glucosestream, name), name


def test_every_module_all_is_sorted_and_resolves():
    for info in pkgutil.walk_packages(glucosestream.__path__, "glucosestream."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        names = getattr(module, "__all__", None)
        if names is None:
            continue
        assert list(names) == isort_order(names), info.name
        for name in names:
            assert hasattr(module, name), f"{info.name}.{name}"


def test_the_metrics_interface_other_packages_use_stays_importable():
    """Names other packages (lake, pipeline, dashboard, cli, the Makefile) import from metrics."""
    metrics = importlib.import_module("glucosestream.metrics")
    for name in (
        "AGP_PROFILE_SCHEMA", "ALL", "CONSENSUS", "DAILY_METRICS_SCHEMA", "EPISODES_SCHEMA",
        "PERIOD_METRICS_SCHEMA", "MetricOptions", "agp_profile", "agp_table", "calculate_file",
        "compute_daily_metrics", "compute_metrics", "compute_period_metrics", "episode_rows",
        "episode_table", "local_dates", "touched_days",
    ):  # fmt: skip
        assert name in metrics.__all__, name
    schemas = importlib.import_module("glucosestream.metrics.result_schemas")
    for name in ("AGP_PROFILE_SCHEMA", "EPISODES_SCHEMA", "PERIOD_METRICS_SCHEMA"):
        assert hasattr(schemas, name), name
    assert hasattr(importlib.import_module("glucosestream.metrics.daily"), "DAILY_METRICS_SCHEMA")
    kernels = importlib.import_module("glucosestream.metrics.kernels")
    assert hasattr(kernels, "announce_compilation")
    for module in ("summary", "warmup"):
        importlib.import_module(f"glucosestream.metrics.{module}")
    localclock = importlib.import_module("glucosestream.localclock")
    assert {"local_days", "wall_clock_times"} <= set(localclock.__all__)
