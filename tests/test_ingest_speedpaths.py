"""The buffer-level checks that replaced per-row string work on the ingest fast paths agree with
the plain Python they stand for."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from glucosestream.formats import tabular
from glucosestream.ingest import fastpath
from glucosestream.ingest.fastpath import constant_strings

TEXT = st.text(alphabet="0123456789-T:Zé ", max_size=24)


@given(st.binary(max_size=200).map(lambda b: bytes(b"a\n\r"[x % 3] for x in b)))
def test_line_ends_and_blank_lines_match_bytes_searches(data):
    ends = tabular._line_ends(data)
    assert len(ends) == data.count(b"\n")
    assert [int(e) for e in ends] == [i for i, byte in enumerate(data) if byte == 0x0A]
    assert tabular._has_blank_line(data, ends) == (b"\n\n" in data or b"\n\r\n" in data)


@given(st.lists(TEXT, max_size=30), st.integers(0, 5), st.integers(0, 5))
def test_the_seconds_colon_is_found_in_sliced_arrays(values, start, cut):
    array = pa.array(values, pa.string()).slice(start, max(0, len(values) - start - cut))
    expected = all(len(v.encode()) > 16 and v.encode()[16] == ord(":") for v in array.to_pylist())
    assert fastpath._colon_at_seconds(array) == expected


def test_constant_strings_read_as_their_value():
    array = constant_strings("parquet", 3)
    assert array.cast(pa.string()).to_pylist() == ["parquet"] * 3
    assert len(array.dictionary) == 1
