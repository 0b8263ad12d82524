"""`glucosestream run`'s scale-out options: --workers, --memory-budget and --cluster as a user
types them, the JSON report undisturbed, the progress line only on a terminal."""

from __future__ import annotations

import json

import pytest

from glucosestream.cli import main, run_options
from glucosestream.pipeline.execution import RunProgress

from .conftest import SECRET


@pytest.fixture
def lake_env(cli, tmp_path):
    """A lake with three patients' two days ingested, not yet run."""
    env = {
        "GLUCOSESTREAM_INGEST__PSEUDONYM_SECRET": SECRET,
        "GLUCOSESTREAM_LAKE": str(tmp_path / "lake"),
    }
    out = tmp_path / "c.csv"
    args = ["synth", "--patients", "3", "--days", "2", "--format", "csv", "--out", str(out)]
    assert cli.invoke(main, args, env=env).exit_code == 0
    assert cli.invoke(main, ["ingest", str(out)], env=env).exit_code == 0
    return env


def test_run_on_worker_processes_prints_a_clean_json_report(cli, lake_env):
    env = {**lake_env, "GLUCOSESTREAM_PIPELINE__READINGS_PER_TASK": "500"}  # a task a patient
    result = cli.invoke(main, ["run", "--workers", "2", "--memory-budget", "2G", "--json"], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # nothing else on stdout: no progress, no bar
    assert report["status"] == "published"
    assert report["executor"] == "processes"
    assert report["buckets"] == 3
    assert sum(w["tasks"] for w in report["workers"]) == 3
    assert "buckets" not in result.stderr  # no progress line when not on a terminal


def test_a_small_run_stays_in_one_process(cli, lake_env):
    result = cli.invoke(main, ["run", "--json"], env=lake_env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["executor"], report["buckets"]) == ("inline", 1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workers", "0"], "--workers"),
        (["--memory-budget", "lots"], "write it as 4G"),
        (["--cluster", " "], "--cluster"),
    ],
)
def test_bad_options_are_usage_errors(cli, lake_env, args, message):
    result = cli.invoke(main, ["run", *args], env=lake_env)
    assert result.exit_code == 2
    assert message in result.output


def test_a_budget_below_a_tasks_own_memory_is_one_clear_error(cli, lake_env):
    result = cli.invoke(main, ["run", "--memory-budget", "100M"], env=lake_env)
    assert result.exit_code == 1
    assert "raise --memory-budget" in result.output
    assert "Traceback" not in result.output
    runs = json.loads(cli.invoke(main, ["runs", "--json"], env=lake_env).stdout)["runs"]
    assert runs[0]["status"] == "failed"  # the batches stay pending for the next run
    again = cli.invoke(main, ["run", "--json"], env=lake_env)
    assert json.loads(again.stdout)["status"] == "published"


def test_a_cluster_nobody_answers_at_is_one_clear_error(cli, lake_env):
    env = {**lake_env, "GLUCOSESTREAM_PIPELINE__READINGS_PER_TASK": "500"}
    result = cli.invoke(main, ["run", "--cluster", "127.0.0.1:9"], env=env)
    assert result.exit_code == 1
    assert "127.0.0.1:9" in result.output
    assert "Traceback" not in result.output


def test_progress_shows_buckets_and_rate_on_a_terminal_only(monkeypatch, capsys):
    class Ctx:
        as_json = False

    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    show = run_options._progress_line(Ctx())  # type: ignore[arg-type]
    assert show is not None
    show(RunProgress(buckets_done=3, buckets=16, readings_done=1_500_000, seconds=2.0))
    show(RunProgress(buckets_done=16, buckets=16, readings_done=8_000_000, seconds=8.0))
    err = capsys.readouterr().err
    assert "buckets 3/16 · 1,500,000 readings · 750,000 readings/s" in err
    assert err.endswith("1,000,000 readings/s\n")  # the last one ends the line
    Ctx.as_json = True
    assert run_options._progress_line(Ctx()) is None  # type: ignore[arg-type]
    monkeypatch.setattr("sys.stderr.isatty", lambda: False)
    Ctx.as_json = False
    assert run_options._progress_line(Ctx()) is None  # type: ignore[arg-type]
