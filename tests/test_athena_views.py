"""The Athena views of the AWS module (deploy/aws/modules/glucosestream/athena/*.sql).

Athena cannot run here, so each view is checked three ways: it parses as Trino SQL
(``trino_sql_validator``, the grammar of Athena engine 3) with no unknown function, type or
ambiguous alias; it avoids the constructs sqlglot translates silently wrong (PLATFORM.md, "SQL
translation"), before and after translation; and its DuckDB translation, run over the Iceberg
tables of a real published lake as Athena would read them (each table's current snapshot),
gives the numbers the local read side gives: the daily metrics of the published read API (what
`glucosestream metrics` prints), the period results, and the dashboard's triage list.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
import sqlglot
import trino_sql_validator
from sqlglot import exp
from sqlglot.tokens import TokenType

from glucosestream.config import EngineSettings, IngestSettings, LakeSettings, Settings
from glucosestream.dashboard.triage import triage_table
from glucosestream.ingest import ingest_path, ingest_records
from glucosestream.lake import open_lakehouse
from glucosestream.pipeline import run_pipeline
from glucosestream.pipeline.execution import Execution
from glucosestream.pipeline.table_registry import TABLES
from glucosestream.published import PublishedLake, PublishedRun, audited_periods
from glucosestream.synth import CohortSpec, write_cohort

from .conftest import SECRET

ATHENA = Path(__file__).resolve().parents[1] / "deploy/aws/modules/glucosestream/athena"
VIEW_FILES = sorted(ATHENA.glob("*.sql"))
DATABASES = ("curated", "results")  # the module replaces "<db>." by the prefixed Glue names
TABLE_NAMES = frozenset(spec.identifier for spec in TABLES)

# PLATFORM.md's silent mistranslations: percentiles become approximate or functions Trino
# lacks, time_bucket becomes DATE_BIN, epoch_ms is reversed, list(... ORDER BY) loses its order.
_FORBIDDEN_NODES = (
    exp.PercentileCont,
    exp.PercentileDisc,
    exp.Median,
    exp.Quantile,
    exp.ApproxQuantile,
    exp.ApproxQuantiles,
    exp.DateBin,
    exp.UnixToTime,
)
_FORBIDDEN_NAMES = frozenset(
    {
        "approx_percentile",
        "date_bin",
        "epoch_ms",
        "list",
        "median",
        "percentile_cont",
        "percentile_disc",
        "quantile",
        "quantile_cont",
        "quantile_disc",
        "time_bucket",
    }
)


# --- the checker ---------------------------------------------------------------------------


def _untranslatable(tree: exp.Expression, dialect: str) -> list[str]:
    """Constructs of ``tree`` that sqlglot translates silently wrong."""
    problems = []
    for node in tree.find_all(exp.Func):
        name = node.name if isinstance(node, exp.Anonymous) else node.sql_name()
        if isinstance(node, _FORBIDDEN_NODES) or name.lower() in _FORBIDDEN_NAMES:
            problems.append(f"{dialect}: {name.lower()}() does not translate faithfully")
    if any(group.args.get("all") for group in tree.find_all(exp.Group)):
        problems.append(f"{dialect}: GROUP BY ALL is not Trino")
    return problems


def _casts_with_colons(sql: str) -> list[str]:
    tokens = sqlglot.Dialect.get_or_raise("trino").tokenize(sql)
    return (
        ["'::' casts are not Trino"]
        if any(t.token_type == TokenType.DCOLON for t in tokens)
        else []
    )


def _view_shape(sql: str, tree: exp.Expression) -> list[str]:
    """One CREATE OR REPLACE VIEW results.<name> first in the file, reading only known tables,
    with every "curated."/"results." of the text one of them (the module's replace() hits
    nothing else)."""
    problems = []
    if not sql.lstrip().upper().startswith("CREATE OR REPLACE VIEW RESULTS."):
        problems.append("the file must start with CREATE OR REPLACE VIEW results.<name>")
    if not (isinstance(tree, exp.Create) and tree.kind == "VIEW" and tree.args.get("replace")):
        return [*problems, "not a CREATE OR REPLACE VIEW"]
    view = tree.this
    if (view.db, view.name) in TABLE_NAMES:
        problems.append(f"view {view.db}.{view.name} would replace an Iceberg table")
    reads = [t for t in tree.expression.find_all(exp.Table) if t.db]
    problems += [
        f"unknown table {t.db}.{t.name}" for t in reads if (t.db, t.name) not in TABLE_NAMES
    ]
    mentions = sum(sql.count(f"{db}.") for db in DATABASES)
    if mentions != len(reads) + 1:
        problems.append(f"{mentions} mentions of curated./results. for {len(reads) + 1} names")
    return problems


def view_problems(sql: str) -> list[str]:
    """Why ``sql`` is not a view Athena can run as tested here; empty when it is."""
    result = trino_sql_validator.validate(sql, dialect="trino", jinja="reject")
    if not result.valid:
        return [f"trino_sql_validator: {result.error}"]
    problems = [f"trino_sql_validator: {w}" for w in result.warnings]
    problems += _casts_with_colons(sql)
    tree = sqlglot.parse_one(sql, read="athena")
    problems += _view_shape(sql, tree)
    problems += _untranslatable(tree, "athena")
    problems += _untranslatable(sqlglot.parse_one(to_duckdb(sql), read="duckdb"), "duckdb")
    return problems


def to_duckdb(sql: str) -> str:
    """The view's DDL translated by sqlglot (read as Athena, which is Trino for a view)."""
    return sqlglot.parse_one(sql, read="athena").sql(dialect="duckdb")


def view_name(sql: str) -> str:
    return sqlglot.parse_one(sql, read="athena").this.name


# --- static checks -------------------------------------------------------------------------


def test_each_file_creates_the_view_it_is_named_after():
    """The module names each named query after its file: file, query and view share a name."""
    names = {path.stem: view_name(path.read_text("utf-8")) for path in VIEW_FILES}
    assert {"daily_summaries", "period_summaries", "triage_list"} <= names.keys()
    assert all(stem == name for stem, name in names.items())


@pytest.mark.parametrize("path", VIEW_FILES, ids=lambda p: p.name)
def test_each_view_is_trino_sql_that_translates_faithfully(path):
    sql = path.read_text("utf-8")
    assert view_problems(sql) == []
    translated = to_duckdb(sql)
    assert "::" not in translated
    assert "GROUP BY ALL" not in translated.upper()


_PLAIN = "SELECT patient_key FROM results.daily_metrics"
# case: (the view's SELECT, a part of the reason the checker gives)
BAD_VIEWS = {
    "group by all": (
        "SELECT patient_key, count(*) AS days FROM results.daily_metrics GROUP BY ALL",
        "GROUP BY ALL",
    ),
    "colon cast": ("SELECT patient_key, readings::double AS n FROM results.daily_metrics", "'::'"),
    "median": (
        "SELECT patient_key, median(mean_mg_dl) AS m FROM results.daily_metrics "
        "GROUP BY patient_key",
        "median() does not translate",
    ),
    "percentile": (
        "SELECT patient_key, approx_percentile(mean_mg_dl, 0.5) AS m "
        "FROM results.daily_metrics GROUP BY patient_key",
        "approx_quantile() does not translate",
    ),
    "time bucket": (
        "SELECT time_bucket(INTERVAL '7' DAY, computed_at) AS w FROM results.daily_metrics",
        "time_bucket() does not translate",
    ),
    "unknown table": ("SELECT patient_key FROM results.daily_metric", "unknown table"),
    "over a table": (_PLAIN, "would replace an Iceberg table"),
    "leading comment": (_PLAIN, "must start with CREATE"),
    "other database text": (  # the module's replace() would rewrite the literal too
        "SELECT patient_key, 'see period_results.md' AS note FROM results.daily_metrics",
        "mentions of curated./results.",
    ),
}


@pytest.mark.parametrize("case", BAD_VIEWS, ids=str)
def test_the_checker_rejects_views_that_would_mistranslate(case):
    select, reason = BAD_VIEWS[case]
    sql = f"CREATE OR REPLACE VIEW results.bad AS\n{select}\n"
    if case == "over a table":
        sql = sql.replace("VIEW results.bad", "VIEW results.daily_metrics")
    if case == "leading comment":
        sql = f"-- a comment first\n{sql}"
    problems = view_problems(sql)
    assert any(reason in problem for problem in problems), problems


@pytest.mark.parametrize("case", ["group by all", "colon cast"])
def test_the_checker_sees_group_by_all_and_colon_casts_without_the_validator(case):
    """trino_sql_validator rejects both first; the checker's own rules catch them too (in a
    translation, or were the validator ever to accept them)."""
    sql = BAD_VIEWS[case][0]
    tree = sqlglot.parse_one(sql, read="duckdb")
    assert _untranslatable(tree, "duckdb") + _casts_with_colons(sql) != []


def test_a_good_view_passes_the_checker():  # the bad cases fail for their fault, not the frame
    sql = "CREATE OR REPLACE VIEW results.good AS\nSELECT patient_key FROM results.daily_metrics\n"
    assert view_problems(sql) == []


def test_the_modules_database_prefix_reaches_every_table_and_nothing_else():
    """The module registers each file after replace()-ing "curated." and "results." by the
    prefixed Glue database names: the result is still Trino, and names only those databases."""
    for path in VIEW_FILES:
        sql = path.read_text("utf-8")
        for database in DATABASES:
            sql = sql.replace(f"{database}.", f"gs_{database}.")
        assert trino_sql_validator.validate(sql, jinja="reject").valid
        tree = sqlglot.parse_one(sql, read="athena")
        assert {t.db for t in tree.find_all(exp.Table) if t.db} <= {"gs_curated", "gs_results"}
        assert tree.this.db == "gs_results"


# --- the views on a published lake ---------------------------------------------------------

START = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)


def _hourly(
    patient: str, zone: str, days: range, glucose: tuple[float, ...], hours: int = 24
) -> list[dict]:
    """Readings on the hour, the first ``hours`` hours of each UTC day of ``days`` (counted
    from START), cycling through ``glucose``."""
    return [
        {
            "patient_id": patient,
            "time": (START + dt.timedelta(days=d, hours=h)).isoformat(),
            "glucose_mg_dl": glucose[(d * 24 + h) % len(glucose)],
            "tz": zone,
        }
        for d in days
        for h in range(hours)
    ]


def _edge_patients() -> list[dict]:
    """Patients that reach the triage's branches and each key of its order: two whose data
    stopped weeks before the newest day (no GRI; ordered by last day), three days in Auckland
    (too few days), and three always in range (GRI 0; ordered by active time, then by key)."""
    wide = (60.0, 90.0, 120.0, 150.0, 180.0, 210.0, 260.0)
    return [
        *_hourly("STALE", "America/Denver", range(4), wide),
        *_hourly("STALE2", "America/Denver", range(3, 6), wide),
        *_hourly("SHORT", "Pacific/Auckland", range(29, 32), wide),
        *_hourly("FLAT", "Europe/Berlin", range(20, 32), (120.0,)),
        *_hourly("FLAT2", "Europe/Berlin", range(20, 32), (120.0,)),
        *_hourly("SPARSE", "Europe/Berlin", range(20, 32), (120.0,), hours=12),
    ]


@dataclass(frozen=True)
class Lake:
    run: PublishedRun
    duck: duckdb.DuckDBPyConnection

    def view(self, file: str) -> list[dict]:
        sql = (ATHENA / file).read_text("utf-8")
        self.duck.execute(to_duckdb(sql))
        return (
            self.duck.execute(f"SELECT * FROM results.{view_name(sql)}")
            .arrow()
            .read_all()
            .to_pylist()
        )


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Iterator[Lake]:
    """A synthetic cohort of 32 days and the edge patients, published by a run; the Iceberg
    tables loaded into DuckDB as Athena reads them (current snapshots, as written), under the
    schemas curated and results."""
    root = tmp_path_factory.mktemp("athena")
    settings = Settings(
        lake=LakeSettings(root=str(root / "lake")),
        ingest=IngestSettings(pseudonym_secret=SECRET),
    )
    cohort = CohortSpec(patients=4, days=32, profile="mixed", interval_min=15, seed=11)
    ingest_path(settings, Path(write_cohort(cohort, root / "cohort.csv", "csv").path))
    ingest_records(settings, _edge_patients())
    assert run_pipeline(settings, execution=Execution(workers=1)).status == "published"
    duck = duckdb.connect()
    for database in DATABASES:
        duck.execute(f"CREATE SCHEMA {database}")
    tables = open_lakehouse(settings.lake, TABLES).tables
    for spec in TABLES:
        rows = tables[spec.short].scan().to_arrow()  # noqa: F841 (DuckDB reads it by name)
        duck.execute(f"CREATE TABLE {spec.name} AS SELECT * FROM rows")
    yield Lake(PublishedLake(settings).current(), duck)
    duck.close()


def _same(got: object, want: object) -> bool:
    if isinstance(want, float) and isinstance(got, float):
        return (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, rel=1e-9)
    return type(got) is type(want) and got == want


def assert_rows_match(got: list[dict], want: list[dict], key: tuple[str, ...]) -> None:
    """Each row of ``want`` (by ``key``) has its values in the row of ``got``; the same keys."""
    by_key = {tuple(row[k] for k in key): row for row in got}
    assert len(by_key) == len(got) == len(want)
    for row in want:
        match = by_key[tuple(row[k] for k in key)]
        wrong = {c: (match[c], v) for c, v in row.items() if not _same(match[c], v)}
        assert not wrong, (key, wrong)


def test_daily_summaries_are_the_published_daily_metrics(lake):
    local = lake.run.daily().to_pylist()  # what `glucosestream metrics` prints
    want = [
        {
            **row,
            "iso_weekday": row["date"].isoweekday(),
            "pct_54_69": row["pct_below_70"] - row["pct_below_54"],
            "pct_181_250": row["pct_above_180"] - row["pct_above_250"],
        }
        for row in local
    ]
    got = lake.view("daily_summaries.sql")
    assert set(got[0]) == set(want[0])
    assert_rows_match(got, want, ("patient_key", "date"))
    assert len({row["tz"] for row in got}) >= 3  # local days of several zones


def test_period_summaries_are_the_audited_period_results(lake):
    local = lake.run.results("periods").to_pylist()
    newest: dict[str, dt.date] = {}
    for row in local:
        newest[row["patient_key"]] = max(
            row["period_start"], newest.get(row["patient_key"], dt.date.min)
        )
    got = lake.view("period_summaries.sql")
    assert {row["is_latest_period"] for row in got} == {True, False}
    want = [
        {c: row[c] for c in got[0] if c in row}
        | {"is_latest_period": row["period_start"] == newest[row["patient_key"]]}
        for row in local
    ]
    assert set(want[0]) == set(got[0])
    assert_rows_match(got, want, ("patient_key", "period_start"))


def test_triage_list_is_the_dashboards_triage_in_its_order(lake):
    local = triage_table(lake.run, EngineSettings()).to_pylist()
    got = lake.view("triage_list.sql")
    assert [row["patient_key"] for row in got] == [row["patient_key"] for row in local]
    assert [row["triage_rank"] for row in got] == list(range(1, len(local) + 1))
    assert_rows_match(got, local, ("patient_key",))
    # The data reaches every branch: a patient without readings in the window (no GRI), one
    # with too few days, patients with enough; and each key of the order decides somewhere.
    assert any(row["gri"] is None for row in got)
    assert {row["sufficient"] for row in got} == {True, False}
    deciding = {_deciding_key(a, b) for a, b in itertools.pairwise(local)}
    assert deciding >= {"gri", "pct_active", "last_date", "patient_key"}


_ORDER = ("gri", "pct_below_54", "pct_below_70", "pct_active", "last_date", "patient_key")


def _deciding_key(first: dict, second: dict) -> str:
    """The first key of the triage order on which two neighbouring rows differ."""
    return next(k for k in _ORDER if first[k] != second[k])


def test_triage_list_gives_the_window_and_each_patients_newest_audited_period(lake):
    as_of = max(lake.run.daily()["date"].to_pylist())
    periods = {
        (row["patient_key"], row["period_start"]): row
        for row in lake.run.results("periods").to_pylist()
    }
    got = lake.view("triage_list.sql")
    with_period = 0
    for row in got:
        assert row["as_of"] == as_of
        assert row["window_start"] == as_of - dt.timedelta(days=13)
        assert type(row["window_start"]) is dt.date
        closed = audited_periods(lake.run, row["patient_key"])
        if not closed:
            assert row["latest_period_start"] is None
            continue
        start, end = closed[-1]
        audited = periods[(row["patient_key"], start)]
        assert (row["latest_period_start"], row["latest_period_end"]) == (start, end)
        assert _same(row["latest_period_gri"], audited["gri"])
        assert row["latest_period_gri_zone"] == audited["gri_zone"]
        assert row["latest_period_sufficient"] == audited["sufficient_14d"]
        with_period += 1
    assert 0 < with_period < len(got)


# Iceberg types Athena can query ("Supported data types for Iceberg tables in Athena", AWS docs:
# not time, fixed(L) or uuid).
_ATHENA_TYPES = ("boolean", "int", "long", "float", "double", "decimal", "string", "binary")
_ATHENA_TYPES += ("date", "timestamp", "timestamptz", "list", "map", "struct")


def test_athena_can_query_every_column_of_the_lake(lake):
    for spec in TABLES:
        for field in lake.run.lake.tables[spec.short].schema().fields:
            kind = str(field.field_type).split("<")[0].split("(")[0]
            assert kind in _ATHENA_TYPES, (spec.name, field.name, kind)


def test_the_views_read_what_the_last_run_published(lake):
    """Athena reads each table's current snapshot; after a published run (and until the next
    run commits) that is the snapshot the metadata store records, which the local side reads."""
    for spec in TABLES:
        published = lake.run.snapshot_id(spec.short)
        current = lake.run.lake.tables[spec.short].current_snapshot()  # None: never written
        assert published == (current.snapshot_id if current is not None else None), spec.short
