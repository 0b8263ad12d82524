"""The public metric API: ``compute_metrics`` on a data frame, and the file calculator.

``compute_metrics``, ``episode_table`` and ``agp_table`` are PURE: they take pandas, polars or
Arrow data with columns ``id, time, gl`` (or the canonical ``patient_key, ts, glucose_mg_dl``)
and return the same library's type (an Arrow table for Arrow or anything else Arrow can read).
``time`` is read as wall-clock time: a zoned timestamp is first converted to its zone's local
time, so calendar days are the patient's local days; naive timestamps and ``YYYY-MM-DD
HH:MM:SS`` strings are taken as they are. ``calculate_file`` does I/O: it reads CSV or Parquet
and writes CSV or Parquet.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal, TypeVar, cast

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from glucosestream.errors import InvalidInput
from glucosestream.metrics import iglu_names
from glucosestream.metrics.agp import AGP_PERCENTILES, agp_curves
from glucosestream.metrics.catalog import (
    ALL,
    CONSENSUS,
    Compat,
    MetricOptions,
    _Patient,
    compute_patient,
    episode_sets,
)
from glucosestream.metrics.episodes import summarise_episodes
from glucosestream.metrics.series import PatientSeries, prepare_series

__all__ = ["agp_table", "calculate_file", "compute_metrics", "episode_table"]

Frame = TypeVar("Frame")
MetricSet = Literal["consensus", "all"]
Naming = Literal["glucosestream", "iglu"]
_STRING_COLUMNS = frozenset({"gri_zone", "start_time", "end_time"})
_ALIASES = (("id", "time", "gl"), ("patient_key", "ts", "glucose_mg_dl"))
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


def _wall_clock_seconds(column: pa.ChunkedArray) -> npt.NDArray[np.int64]:
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        column = pc.strptime(column, format="%Y-%m-%d %H:%M:%S", unit="s")
    if not pa.types.is_timestamp(column.type):
        raise InvalidInput(f"column time has type {column.type}; expected a timestamp")
    if column.type.tz is not None:
        column = pc.local_timestamp(column)
    seconds = pc.cast(pc.cast(column, pa.timestamp("s", tz=None), safe=False), pa.int64())
    return np.asarray(seconds.to_numpy(), dtype=np.int64)


def _patients(table: pa.Table) -> Iterator[tuple[str, PatientSeries]]:
    """(id, series) per patient, in order of first appearance sorted by id."""
    names = set(table.column_names)
    found = next((a for a in _ALIASES if set(a) <= names), None)
    if found is None:
        raise InvalidInput(
            f"columns {sorted(names)} lack id, time, gl (or patient_key, ts, glucose_mg_dl); "
            "rename the columns"
        )
    id_col, time_col, gl_col = found
    table = table.select([id_col, time_col, gl_col]).rename_columns(["id", "time", "gl"])
    table = table.set_column(0, "id", pc.cast(table["id"], pa.string()))
    table = table.take(pc.sort_indices(table, [("id", "ascending")]))  # stable: keeps row order
    time_s = _wall_clock_seconds(table["time"])
    gl = np.asarray(pc.cast(table["gl"], pa.float64()).to_numpy(zero_copy_only=False))
    ids = table["id"].to_numpy(zero_copy_only=False)
    if ids.size == 0:
        return
    starts = np.flatnonzero(np.concatenate(([True], ids[1:] != ids[:-1])))
    bounds: list[int] = [*starts.tolist(), int(ids.size)]
    for lo, hi in itertools.pairwise(bounds):
        yield str(ids[lo]), prepare_series(time_s[lo:hi], gl[lo:hi])


def _resolve(metrics: MetricSet | Sequence[str]) -> tuple[str, ...]:
    if metrics == "consensus":
        return CONSENSUS
    if metrics == "all":
        return ALL
    unknown = [m for m in metrics if m not in ALL]
    if unknown:
        raise InvalidInput(f"unknown metrics {unknown}; see docs/metrics.md for the names")
    return tuple(metrics)


def _column(name: str, values: list[object]) -> pa.Array:
    return pa.array(values, pa.string() if name in _STRING_COLUMNS else pa.float64())


def compute_metrics(
    frame: Frame,
    metrics: MetricSet | Sequence[str] = "consensus",
    *,
    compat: Compat = "published",
    names: Naming = "glucosestream",
) -> Frame:
    """One row per id with the chosen metrics (docs/metrics.md lists them).

    ``compat="iglu"`` reproduces iglu 4.3.0's conventions; ``names="iglu"`` names and orders the
    columns as iglu's ``all_metrics`` does (``metrics`` then picks ``all_metrics`` or its
    ``consensus_only`` variant).
    """
    wanted = _resolve(metrics)
    options = MetricOptions(compat=compat)
    mapping: tuple[tuple[str, str], ...] = ()
    if names == "iglu":
        mapping = iglu_names.CONSENSUS_ONLY if metrics == "consensus" else iglu_names.ALL_METRICS
        if compat == "iglu":
            mapping = tuple((i, "mag_iglu_all_metrics" if i == "MAG" else m) for i, m in mapping)
        wanted = tuple(m for _, m in mapping)
    ids: list[str] = []
    rows: list[dict[str, object]] = []
    for patient_id, series in _patients(_to_arrow(frame)):
        ids.append(patient_id)
        rows.append(dict(compute_patient(series, wanted, options)))
    columns = {"id": pa.array(ids, pa.string())}
    if names == "iglu":
        for iglu_name, ours in mapping:
            values = [r[ours] for r in rows]
            if ours == "days":
                values = [round(cast(float, v), 1) for v in values]
            columns[iglu_name] = _column(ours, values)
    else:
        for name in wanted:
            columns[name] = _column(name, [r[name] for r in rows])
    return cast(Frame, _like(pa.table(columns), frame))


def episode_table(frame: Frame, *, compat: Compat = "published") -> Frame:
    """iglu's ``episode_calculation`` columns: one row per id x episode type and level.

    With ``compat="published"`` an eighth row per id gives extended hyperglycaemia (Battelino
    2023); iglu has no such row.
    """
    options = MetricOptions(compat=compat)
    rows: dict[str, list[object]] = {c: [] for c in iglu_names.EPISODE_COLUMNS}
    kinds = list(_EPISODE_ROWS)
    if compat == "published":
        kinds.append(("hyper", "extended", "hyper_extended"))
    for patient_id, series in _patients(_to_arrow(frame)):
        if series.size == 0:
            continue
        patient = _Patient(series, options)
        found = episode_sets(patient)
        for kind, level, key in kinds:
            s = summarise_episodes(found[key], patient.grid)
            values = (
                patient_id,
                kind,
                level,
                s.avg_ep_per_day,
                s.avg_ep_duration_min,
                s.avg_ep_gl_mg_dl,
                s.total_episodes,
            )
            for column, value in zip(iglu_names.EPISODE_COLUMNS, values, strict=True):
                rows[column].append(None if value != value else value)
    table = pa.table(rows).cast(
        pa.schema(
            [(c, pa.string()) for c in iglu_names.EPISODE_COLUMNS[:3]]
            + [(c, pa.float64()) for c in iglu_names.EPISODE_COLUMNS[3:6]]
            + [("total_episodes", pa.int64())]
        )
    )
    return cast(Frame, _like(table, frame))


def agp_table(frame: Frame, *, compat: Compat = "published") -> Frame:
    """AGP percentile curves: one row per id x time of day (``seconds`` after midnight)."""
    options = MetricOptions(compat=compat)
    parts: list[pa.Table] = []
    labels = [f"p{int(p):02d}" for p in AGP_PERCENTILES]
    for patient_id, series in _patients(_to_arrow(frame)):
        if series.size == 0:
            continue
        curves = agp_curves(_Patient(series, options).grid)
        columns: dict[str, object] = {
            "id": pa.array([patient_id] * curves.seconds.size, pa.string()),
            "seconds": pa.array(curves.seconds),
        }
        for label, row in zip(labels, curves.percentiles_mg_dl, strict=True):
            columns[label] = pa.array(row, pa.float64(), from_pandas=True)
        parts.append(pa.table(columns))
    empty = pa.schema(
        [("id", pa.string()), ("seconds", pa.int64())] + [(label, pa.float64()) for label in labels]
    )
    table = pa.concat_tables(parts) if parts else empty.empty_table()
    return cast(Frame, _like(table, frame))


def _read(path: Path) -> pa.Table:
    if path.suffix.lower() == ".parquet":
        return pq.read_table(path)
    types = {"id": pa.string(), "gl": pa.float64(), "patient_key": pa.string()}
    return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=types))


def _write(table: pa.Table, path: Path) -> None:
    if path.suffix.lower() == ".parquet":
        pq.write_table(table, path)
    else:
        pacsv.write_csv(table, path)


def calculate_file(
    input_path: Path,
    out_path: Path,
    *,
    metric_set: MetricSet = "all",
    names: Naming = "glucosestream",
    compat: Compat | None = None,
    episodes_path: Path | None = None,
) -> int:
    """Read ``id,time,gl`` readings (CSV or Parquet, by suffix), write one row of metrics per id
    to ``out_path`` (CSV or Parquet) and, if asked, the episode table to ``episodes_path``.

    ``compat`` defaults to ``"iglu"`` when ``names="iglu"`` (so R users can diff the numbers)
    and to ``"published"`` otherwise. Returns the number of ids written.
    """
    mode: Compat = compat or ("iglu" if names == "iglu" else "published")
    try:
        table = _read(input_path)
    except (OSError, pa.ArrowInvalid) as err:
        raise InvalidInput(f"cannot read readings: {err}", source=str(input_path)) from err
    result = compute_metrics(table, metric_set, compat=mode, names=names)
    _write(result, out_path)
    if episodes_path is not None:
        _write(episode_table(table, compat=mode), episodes_path)
    return int(result.num_rows)
