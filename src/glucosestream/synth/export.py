"""Write a synthetic cohort to a file, one chunk of patients at a time."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from glucosestream.errors import ConfigError
from glucosestream.synth.generator import CohortSpec, generate_chunks

__all__ = ["SYNTH_FORMATS", "SynthReport", "write_cohort"]

SYNTH_FORMATS: Final = ("parquet", "csv", "jsonl")


@dataclass(frozen=True, slots=True)
class SynthReport:
    path: str
    format: str
    patients: int
    days: int
    readings: int
    duration_ms: int


def write_cohort(
    spec: CohortSpec,
    out: Path,
    fmt: str,
    *,
    on_chunk: Callable[[int], None] | None = None,
) -> SynthReport:
    """Generate ``spec`` and write it to ``out`` as ``fmt``; ``on_chunk`` gets readings so far."""
    if fmt not in SYNTH_FORMATS:
        raise ConfigError(
            f"synth cannot write format {fmt!r} yet; use one of {', '.join(SYNTH_FORMATS)}"
        )
    started = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    readings = 0
    with _writer(out, fmt) as write:
        for chunk in generate_chunks(spec):
            write(chunk)
            readings += chunk.num_rows
            if on_chunk is not None:
                on_chunk(readings)
    return SynthReport(
        path=str(out),
        format=fmt,
        patients=spec.patients,
        days=spec.days,
        readings=readings,
        duration_ms=round((time.perf_counter() - started) * 1000),
    )


class _writer:
    """Context manager giving a ``write(table)`` callable for one output format."""

    def __init__(self, out: Path, fmt: str) -> None:
        self.out = out
        self.fmt = fmt
        self._parquet: pq.ParquetWriter | None = None
        self._text = None if fmt == "parquet" else out.open("w", encoding="utf-8", newline="")

    def __enter__(self) -> Callable[[pa.Table], None]:
        if self._text is not None and self.fmt == "csv":
            self._text.write("patient_id,device_id,time,glucose_mg_dl,tz\n")
        return self.write

    def __exit__(self, *exc: object) -> None:
        if self._parquet is not None:
            self._parquet.close()
        if self._text is not None:
            self._text.close()

    def write(self, table: pa.Table) -> None:
        if self.fmt == "parquet":
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.out, table.schema)
            self._parquet.write_table(table)
            return
        text = self._text
        if text is None:
            raise RuntimeError("the text writer is closed")
        seconds = table["time"].cast(pa.timestamp("s", tz="UTC"))
        times = pc.strftime(seconds, format="%Y-%m-%dT%H:%M:%SZ").to_pylist()
        columns = zip(
            table["patient_id"].to_pylist(),
            table["device_id"].to_pylist(),
            times,
            table["glucose_mg_dl"].to_pylist(),
            table["tz"].to_pylist(),
            strict=True,
        )
        if self.fmt == "csv":
            text.writelines(f"{p},{d},{t},{g},{z}\n" for p, d, t, g, z in columns)
        else:
            text.writelines(
                json.dumps(
                    {"patient_id": p, "device_id": d, "time": t, "glucose_mg_dl": g, "tz": z}
                )
                + "\n"
                for p, d, t, g, z in columns
            )
