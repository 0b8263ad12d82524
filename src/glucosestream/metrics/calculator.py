"""The public metric API: ``compute_metrics`` on a data frame, and the file calculator.

``compute_metrics``, ``episode_table`` and ``agp_table`` are PURE: they take pandas, polars or
Arrow data with columns ``id, time, gl`` (or the canonical ``patient_key, ts, glucose_mg_dl``)
and return the same library's type (an Arrow table for Arrow or anything else Arrow can read).
``compute_metrics`` also takes an Arrow ``RecordBatchReader`` whose rows are grouped by
ascending id (``parquet_stream(path)`` for a Parquet file, DuckDB's ``fetch_record_batch()`` of
an ``ORDER BY id`` query) and reads it ``SLICE_READINGS`` readings at a time, so the cohort need
not fit in memory. Its compiled pass spreads the patients over every core this process may use;
``threads=`` sets how many threads, with the same results bit for bit.
``time`` is read as wall-clock time: a zoned timestamp is first converted to its zone's local
time, so calendar days are the patient's local days; naive timestamps and ``YYYY-MM-DD
HH:MM:SS`` strings are taken as they are. ``calculate_file`` does I/O: it reads CSV, Parquet or
JSON lines (also in the tabular layout ``synth`` writes: ``patient_id, time, glucose_mg_dl``
with a ``tz`` column placing each UTC instant on the patient's wall clock) and writes CSV or
Parquet.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, TypeVar, cast

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from glucosestream.errors import InvalidInput
from glucosestream.metrics.agp_loess import loess
from glucosestream.metrics.metric_options import Compat, MetricOptions
from glucosestream.metrics.spec import (
    ALL,
    CONSENSUS,
    IGLU_ALL_METRICS,
    IGLU_CONSENSUS_ONLY,
    IGLU_EPISODE_COLUMNS,
)
from glucosestream.metrics.tabular_layout import TEXT_TYPES, as_calculator_columns
from glucosestream.metrics.thresholds import AGP_PERCENTILES, MINUTES_PER_DAY

__all__ = [
    "agp_table",
    "calculate_file",
    "compute_metrics",
    "episode_table",
    "parquet_stream",
]

Frame = TypeVar("Frame")
MetricSet = Literal["consensus", "all"]
Naming = Literal["glucosestream", "iglu"]
# Readings of whole patients worked on at a time (a stream read, a table sliced): big enough
# that each compiled pass has about a thousand patients to share between cores, small enough
# that the arrays built for a slice reuse memory already in use: 4,000,000 float64 or int64
# values are 32,000,000 bytes, under glibc's largest mmap threshold (32 MiB), so freed slices
# are reused from the heap instead of mapped afresh (docs/decisions.md).
SLICE_READINGS: Final = 4_000_000
JSON_LINES_SUFFIXES: Final = (".jsonl", ".ndjson")
_EPISODE_ROWS = (
    ("hypo", "lv1", "hypo_lv1"),
    ("hypo", "lv2", "hypo_lv2"),
    ("hypo", "extended", "hypo_extended"),
    ("hyper", "lv1", "hyper_lv1"),
    ("hyper", "lv2", "hyper_lv2"),
    ("hypo", "lv1_excl", "hypo_lv1_excl"),
    ("hyper", "lv1_excl", "hyper_lv1_excl"),
)


def _to_arrow(frame: object) -> pa.Table:
    if isinstance(frame, pa.Table):
        return frame
    if type(frame).__module__.split(".")[0] == "pandas":
        return pa.Table.from_pandas(frame, preserve_index=False)
    try:
        return pa.table(frame)
    except (TypeError, ValueError) as err:
        raise InvalidInput(
            f"cannot read a {type(frame).__name__} as a table; pass pandas, polars or Arrow data"
        ) from err


def _like(table: pa.Table, frame: object) -> object:
    library = type(frame).__module__.split(".")[0]
    if library == "pandas":
        return table.to_pandas()
    if library == "polars":
        import polars as pl  # the caller passed polars data, so it is installed

        return pl.from_arrow(table)
    return table


def _resolve(metrics: MetricSet | str | Sequence[str]) -> tuple[str, ...]:
    if metrics == "consensus":
        return CONSENSUS
    if metrics == "all":
        return ALL
    if isinstance(metrics, str):  # one metric's name (not a sequence of its characters)
        metrics = (metrics,)
    unknown = [m for m in metrics if m not in ALL]
    if unknown:
        raise InvalidInput(f"unknown metrics {unknown}; see docs/metrics.md for the names")
    return tuple(metrics)


def _tables(frame: object) -> Iterator[tuple[pa.Table, _Runs | None]]:
    """The input as tables of whole patients, with their ids and offsets when known: a stream
    read a slice at a time, else the whole table."""
    if not isinstance(frame, pa.RecordBatchReader):
        yield _to_arrow(frame), None
        return
    empty = True
    try:
        for table, runs in _whole_patients(iter(frame)):
            empty = False
            yield table, runs
    except _Unsorted:
        raise InvalidInput(
            "the stream's rows are not grouped by id in ascending order; sort it by id "
            "(ORDER BY id), or pass a table"
        ) from None
    if empty:
        yield frame.schema.empty_table(), None


def _thread_count(threads: int | None) -> int:
    from glucosestream.metrics.kernel_columns import usable_cores  # numba loads on first use

    if threads is None:
        return usable_cores()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise InvalidInput(
            f"threads={threads!r} is not a whole number of at least 1; pass 1 for one thread, "
            f"or leave it out for every core ({usable_cores()} here)"
        )
    return threads


def _cohort_values(
    frame: object, names: tuple[str, ...], options: MetricOptions, threads: int
) -> tuple[pa.Array, dict[str, pa.Array]]:
    """(ids, ``{name: column}``), computed one slice of whole patients at a time."""
    from glucosestream.metrics.cohort_layout import cohort_slices  # numba loads on first use
    from glucosestream.metrics.kernel_columns import cohort_columns, numba_threads

    ids: list[pa.Array] = []
    parts: list[dict[str, pa.Array]] = []
    with numba_threads(threads):  # sorting times within patients, when they are not sorted
        for table, runs in _tables(frame):
            for cohort in cohort_slices(table, SLICE_READINGS, runs):
                ids.append(cohort.ids)
                parts.append(cohort_columns(cohort, names, options, threads))
    if len(parts) == 1:
        return ids[0], parts[0]
    return pa.concat_arrays(ids), {n: pa.concat_arrays([p[n] for p in parts]) for n in names}


def compute_metrics(
    frame: Frame,
    metrics: MetricSet | str | Sequence[str] = "consensus",
    *,
    compat: Compat = "published",
    names: Naming = "glucosestream",
    threads: int | None = None,
) -> Frame:
    """One row per id with the chosen metrics (docs/metrics.md lists them): ``"consensus"``,
    ``"all"``, one metric's name or a sequence of names.

    ``compat="iglu"`` reproduces iglu 4.3.0's conventions; ``names="iglu"`` names and orders the
    columns as iglu's ``all_metrics`` does (``metrics`` then picks ``all_metrics`` or its
    ``consensus_only`` variant). ``threads`` is how many threads the compiled pass runs on
    (default: every core this process may use); the results are the same on any number.
    """
    wanted = _resolve(metrics)
    n_threads = _thread_count(threads)
    options = MetricOptions(compat=compat)
    mapping: tuple[tuple[str, str], ...] = ()
    if names == "iglu":
        mapping = IGLU_CONSENSUS_ONLY if metrics == "consensus" else IGLU_ALL_METRICS
        if compat == "iglu":
            mapping = tuple((i, "mag_iglu_all_metrics" if i == "MAG" else m) for i, m in mapping)
        wanted = tuple(m for _, m in mapping)
    ids, values = _cohort_values(frame, tuple(dict.fromkeys(wanted)), options, n_threads)
    columns: dict[str, pa.Array] = {"id": ids}
    if names == "iglu":
        for iglu_name, ours in mapping:
            column = values[ours]
            if ours == "days":  # iglu prints ndays rounded to one decimal
                column = pa.array([round(v, 1) for v in column.to_pylist()], pa.float64())
            columns[iglu_name] = column
    else:
        for name in wanted:
            columns[name] = values[name]
    return cast(Frame, _like(pa.table(columns), frame))


def episode_table(
    frame: Frame, *, compat: Compat = "published", threads: int | None = None
) -> Frame:
    """iglu's ``episode_calculation`` columns: one row per id x episode type and level.

    With ``compat="published"`` an eighth row per id gives extended hyperglycaemia (Battelino
    2023); iglu has no such row. ``threads`` as in ``compute_metrics``.
    """
    from glucosestream.metrics.cohort_layout import prepare_cohort  # numba loads on first use
    from glucosestream.metrics.kernel_columns import cohort_columns, numba_threads

    options = MetricOptions(compat=compat)
    n_threads = _thread_count(threads)
    kinds = list(_EPISODE_ROWS)
    if compat == "published":
        kinds.append(("hyper", "extended", "hyper_extended"))
    with numba_threads(n_threads):
        cohort = prepare_cohort(_to_arrow(frame))
    stats = ("per_day", "duration_min", "mean_mg_dl", "episodes")
    names = [f"{key}_{stat}" for _, _, key in kinds for stat in stats]
    values = cohort_columns(cohort, names, options, n_threads)
    present = np.flatnonzero(np.diff(cohort.readings.offsets) > 0)
    ids = np.asarray(cohort.ids.to_numpy(zero_copy_only=False))[present]
    rows: dict[str, list[object]] = {c: [] for c in IGLU_EPISODE_COLUMNS}
    arrays = {n: np.asarray(values[n].to_numpy(zero_copy_only=False))[present] for n in names}
    for i, patient_id in enumerate(ids.tolist()):
        for kind, level, key in kinds:
            row = (patient_id, kind, level, *(arrays[f"{key}_{stat}"][i] for stat in stats))
            for column, value in zip(IGLU_EPISODE_COLUMNS, row, strict=True):
                rows[column].append(None if value != value else value)
    table = pa.table(rows).cast(
        pa.schema(
            [(c, pa.string()) for c in IGLU_EPISODE_COLUMNS[:3]]
            + [(c, pa.float64()) for c in IGLU_EPISODE_COLUMNS[3:6]]
            + [("total_episodes", pa.int64())]
        )
    )
    return cast(Frame, _like(table, frame))


def agp_table(frame: Frame, *, compat: Compat = "published", smooth: bool = False) -> Frame:
    """AGP percentile curves: one row per id x time of day (``seconds`` after midnight);
    ``smooth=True`` smooths each curve by loess (span 0.3, as iglu's ``plot_agp``)."""
    from glucosestream.metrics.cohort_layout import prepare_cohort  # numba loads on first use
    from glucosestream.metrics.kernel_columns import views
    from glucosestream.metrics.kernels.period_profiles import agp_percentiles, grid_steps

    options = MetricOptions(compat=compat)
    labels = [f"p{int(p):02d}" for p in AGP_PERCENTILES]
    cohort = prepare_cohort(_to_arrow(frame))
    offsets, t, g = views(cohort, options)[2].as_tuple()
    steps = grid_steps(offsets, t)
    probs = np.asarray(AGP_PERCENTILES) / 100.0
    curves = agp_percentiles(offsets, t, g, steps, probs, options.inter_gap_min * 60.0)
    per_day = np.where(steps > 0, MINUTES_PER_DAY // np.maximum(steps, 1), 0)
    patient = np.repeat(np.arange(steps.size), per_day)
    first = np.repeat(np.cumsum(per_day) - per_day, per_day)
    seconds = (np.arange(patient.size) - first + 1) * np.repeat(steps, per_day) * 60
    columns: dict[str, pa.Array] = {
        "id": pc.take(cohort.ids, pa.array(patient)),
        "seconds": pa.array(seconds, pa.int64()),
    }
    if smooth:
        bounds = np.concatenate(([0], np.cumsum(per_day)))
        for lo, hi in itertools.pairwise(bounds.tolist()):
            x = seconds[lo:hi].astype(np.float64)
            for j in range(len(labels)):
                curves[lo:hi, j] = loess(x, curves[lo:hi, j])
    for j, label in enumerate(labels):
        columns[label] = pa.array(curves[:, j], pa.float64())
    return cast(Frame, _like(pa.table(columns), frame))


_Runs = tuple[pa.Array, npt.NDArray[np.int64]]  # ids, offsets (cohort.patient_runs)


class _Unsorted(Exception):
    """The input turned out not to be sorted by id, so it cannot be streamed."""


def parquet_stream(path: Path) -> pa.RecordBatchReader:
    """A Parquet file as a stream of batches in file order, ids as dictionary codes (so whole
    patients are found by comparing integers). Row group by row group, read on a thread at most
    ``SLICE_READINGS`` readings ahead of the consumer: memory stays bounded by a slice however
    big the file (pyarrow.dataset's scanner reads ahead without bound), and the next slice is
    read while one is computed."""
    names = pq.read_schema(path).names
    source = pq.ParquetFile(path, read_dictionary=[n for n in ("id", "patient_key") if n in names])
    # Whole row groups: iter_batches, which cuts batches across them, read a 39 M-reading file
    # 2-5x slower (0.36-1.1 s against 0.21 s).
    groups = range(source.num_row_groups)
    batches = (batch for g in groups for batch in source.read_row_group(g).to_batches())
    return pa.RecordBatchReader.from_batches(
        source.schema_arrow, _read_ahead(batches, SLICE_READINGS)
    )


def _read_ahead(batches: Iterator[pa.RecordBatch], max_rows: int) -> Iterator[pa.RecordBatch]:
    """``batches``, produced on a thread while fewer than ``max_rows`` rows wait for the
    consumer (so one batch at least); a reading error is raised to the consumer, and a consumer
    that stops early stops the thread. A bound in rows rather than batches: a lake file's row
    groups are 16,384 rows, a pyarrow file's a million."""
    ready: queue.SimpleQueue[pa.RecordBatch | BaseException | None] = queue.SimpleQueue()
    room = threading.Condition()
    waiting = [0]  # rows produced and not yet consumed
    stopped = threading.Event()

    def produce() -> None:
        try:
            for batch in batches:
                with room:
                    room.wait_for(lambda: waiting[0] < max_rows or stopped.is_set())
                    if stopped.is_set():
                        return
                    waiting[0] += batch.num_rows
                ready.put(batch)
            ready.put(None)
        except BaseException as err:  # handed to the consumer, which raises it
            ready.put(err)

    thread = threading.Thread(target=produce, name="parquet-read-ahead", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            with room:
                waiting[0] -= item.num_rows
                room.notify()
            yield item
    finally:
        with room:
            stopped.set()
            room.notify()
        thread.join()


def _batches(path: Path) -> Iterator[pa.RecordBatch]:
    """The file's readings, batch by batch, in the calculator's columns (``tabular_layout``)."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        batches: Iterator[pa.RecordBatch] = parquet_stream(path)
    elif suffix in JSON_LINES_SUFFIXES:
        batches = iter(pajson.open_json(path))
    else:
        options = pacsv.ConvertOptions(column_types=TEXT_TYPES)
        batches = iter(pacsv.open_csv(path, convert_options=options))
    for batch in batches:
        yield as_calculator_columns(batch, str(path))


def _whole_patients(batches: Iterator[pa.RecordBatch]) -> Iterator[tuple[pa.Table, _Runs]]:
    """Tables of whole patients, in id order, with their ids and offsets; raises ``_Unsorted``
    if ids are not sorted."""
    from glucosestream.metrics.cohort_layout import patient_runs

    held: list[pa.RecordBatch] = []
    rows = 0
    last_id: str | None = None
    for batch in itertools.chain(batches, [None]):
        if batch is not None:
            held.append(batch)
            rows += batch.num_rows
            if rows < SLICE_READINGS:
                continue
        table = pa.Table.from_batches(held) if held else None
        if table is None or table.num_rows == 0:
            return
        runs = patient_runs(table)
        if runs is None or (last_id is not None and runs[0][0].as_py() <= last_id):
            raise _Unsorted
        ids, offsets = runs
        # Whole patients up to SLICE_READINGS readings (one at least), so slices are not cut
        # again downstream; the last patient is held back unless the input has ended, as its
        # rows may go on in the next batch.
        complete = len(ids) if batch is None else len(ids) - 1
        if complete == 0:
            continue
        fit = int(np.searchsorted(offsets[1 : complete + 1], SLICE_READINGS, side="right"))
        patients = complete if batch is None else min(max(fit, 1), complete)
        cut = int(offsets[patients])
        last_id = ids[patients - 1].as_py()
        yield table.slice(0, cut), (ids[:patients], offsets[: patients + 1])
        held = table.slice(cut).to_batches()
        rows = table.num_rows - cut


class _Output:
    """A CSV or Parquet file written one table at a time (format by suffix)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer: pq.ParquetWriter | pacsv.CSVWriter | None = None

    def write(self, table: pa.Table) -> None:
        if self.writer is None:
            parquet = self.path.suffix.lower() == ".parquet"
            self.writer = (pq.ParquetWriter if parquet else pacsv.CSVWriter)(
                self.path, table.schema
            )
        self.writer.write_table(table)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


@dataclass(frozen=True, slots=True)
class _Job:
    metric_set: MetricSet
    names: Naming
    compat: Compat
    out_path: Path
    episodes_path: Path | None
    threads: int | None

    def run(self, tables: Iterator[pa.Table]) -> int:
        out = _Output(self.out_path)
        episodes = _Output(self.episodes_path) if self.episodes_path else None
        written = 0
        try:
            for table in tables:
                result = compute_metrics(
                    table,
                    self.metric_set,
                    compat=self.compat,
                    names=self.names,
                    threads=self.threads,
                )
                out.write(result)
                written += result.num_rows
                if episodes is not None:
                    episodes.write(episode_table(table, compat=self.compat, threads=self.threads))
        finally:
            out.close()
            if episodes is not None:
                episodes.close()
        return written


def calculate_file(
    input_path: Path,
    out_path: Path,
    *,
    metric_set: MetricSet = "all",
    names: Naming = "glucosestream",
    compat: Compat | None = None,
    episodes_path: Path | None = None,
    threads: int | None = None,
) -> int:
    """Read ``id,time,gl`` readings (CSV, Parquet or JSON lines, by suffix; or synth's tabular
    layout ``patient_id,time,glucose_mg_dl,tz``), write one row of metrics per id to
    ``out_path`` (CSV or Parquet) and, if asked, the episode table to ``episodes_path``.

    An input sorted by id is streamed, ``SLICE_READINGS`` readings of whole patients at a time, so
    it may be larger than memory; an unsorted one is found out on the way and read whole.
    ``compat`` defaults to ``"iglu"`` when ``names="iglu"`` (so R users can diff the numbers)
    and to ``"published"`` otherwise; ``threads`` as in ``compute_metrics``. Returns the number
    of ids written.
    """
    mode: Compat = compat or ("iglu" if names == "iglu" else "published")
    job = _Job(metric_set, names, mode, out_path, episodes_path, threads)
    try:
        try:
            return job.run(table for table, _ in _whole_patients(_batches(input_path)))
        except _Unsorted:
            return job.run(iter([pa.Table.from_batches(list(_batches(input_path)))]))
    except (OSError, pa.ArrowInvalid) as err:
        raise InvalidInput(f"cannot read readings: {err}", source=str(input_path)) from err
