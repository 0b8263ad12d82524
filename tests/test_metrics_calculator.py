"""The file calculator streams inputs sorted by id, whole patients at a time."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from glucosestream.metrics import calculator as api
from glucosestream.metrics.calculator import calculate_file, compute_metrics, episode_table


def _readings(patients: int = 9, n: int = 400) -> pa.Table:
    rng = np.random.default_rng(3)
    ids = np.repeat([f"s{k:02d}" for k in range(patients)], n)
    t = np.tile(1_700_000_000 + np.arange(n) * 300, patients)
    g = np.clip(140 + 80 * np.sin(np.arange(ids.size) / 40) + rng.normal(0, 9, ids.size), 40, 400)
    return pa.table({"id": ids, "time": pa.array(t, pa.timestamp("s")), "gl": g.round()})


def _rows(table: pa.Table) -> list[dict]:
    """Rows with NaN replaced by a marker, so equal tables compare equal."""
    return [
        {k: "NaN" if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()}
        for r in table.to_pylist()
    ]


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
@pytest.mark.parametrize("shuffle", [False, True])
def test_streamed_result_equals_the_whole_file_result(tmp_path, monkeypatch, suffix, shuffle):
    table = _readings()
    if shuffle:  # unsorted ids: found out while streaming, then read whole
        table = table.take(np.random.default_rng(1).permutation(table.num_rows))
    source = tmp_path / f"in{suffix}"
    (pq.write_table if suffix == ".parquet" else pacsv.write_csv)(table, source)
    monkeypatch.setattr(api, "SLICE_READINGS", 1000)  # 2.5 patients per batch
    seen: list[int] = []
    real = api.compute_metrics
    monkeypatch.setattr(
        api, "compute_metrics", lambda t, *a, **k: seen.append(t.num_rows) or real(t, *a, **k)
    )
    out, episodes = tmp_path / "out.parquet", tmp_path / "ep.parquet"
    assert calculate_file(source, out, metric_set="all", episodes_path=episodes) == 9
    assert _rows(pq.read_table(out)) == _rows(compute_metrics(table, "all"))
    assert _rows(pq.read_table(episodes)) == _rows(episode_table(table))
    if shuffle:
        assert seen[-1] == table.num_rows
    else:
        assert len(seen) >= 2
        assert all(rows % 400 == 0 for rows in seen)


def test_parquet_stream_gives_the_file_in_order_and_computes_like_the_table(tmp_path, monkeypatch):
    table = _readings()
    source = tmp_path / "in.parquet"
    pq.write_table(table, source, row_group_size=500)  # 8 row groups, patients cut across them
    monkeypatch.setattr(api, "SLICE_READINGS", 1000)  # batches of 251 readings
    streamed = pa.Table.from_batches(list(api.parquet_stream(source)))
    assert streamed["id"].type == pa.dictionary(pa.int32(), pa.string())
    assert streamed.cast(table.schema).equals(table)
    result = compute_metrics(api.parquet_stream(source), "all")
    assert _rows(result) == _rows(compute_metrics(table, "all"))


def test_read_ahead_raises_the_readers_error_and_stops_when_the_consumer_does():
    def failing():
        yield pa.record_batch({"x": [1]})
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(api._read_ahead(failing(), 10))
    produced: list[int] = []

    def endless():
        while True:
            produced.append(1)
            yield pa.record_batch({"x": [len(produced)]})

    before = threading.active_count()
    stream = api._read_ahead(endless(), 3)  # batches of one row: three wait at most
    assert next(stream).column(0)[0].as_py() == 1
    time.sleep(0.2)  # time for the reader to fill what it may
    assert len(produced) <= 1 + 3 + 1  # the one consumed, three waiting, one held back
    stream.close()  # the consumer stops early: the reading thread must end, not block
    assert threading.active_count() == before
