"""Exports for other systems: FHIR R4 (``fhir_bundle``), OMOP CDM 5.4 (``omop``) and tidy
CSV/Parquet (``tidy``) of the published lake.

Every writer takes a ``PublishedRun``, the patients' keys, an optional window of local days and
an output path, reads the published lake only through the run, and returns an ``ExportReport``:
the files it wrote, the rows of each kind and the bytes on disk. The command line
(``glucosestream export``, ``cli/export_command.py``) resolves the patients and prints the report.

An export is for users entitled to the data: a patient is named by the id as ingested (or by
the patient key with ``--pseudonymous``); it never holds the pseudonym secret, tokens or any
patient other than those asked for. This package sits beside ``app``, above ``dashboard``
(``scripts/import_layers.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ExportReport", "export_report"]


@dataclass(frozen=True, slots=True)
class ExportReport:
    """What an export wrote: its files, the rows (or resources) of each kind, the bytes of
    the files on disk, and notes for the user (for example a part left out, and why)."""

    files: list[Path]
    rows: dict[str, int]
    bytes: int
    notes: list[str] = field(default_factory=list)


def export_report(
    files: Iterable[Path], rows: Mapping[str, int], notes: Iterable[str] = ()
) -> ExportReport:
    """The report of ``files`` once written: their sizes are read from disk."""
    written = list(files)
    return ExportReport(
        files=written,
        rows=dict(rows),
        bytes=sum(path.stat().st_size for path in written),
        notes=list(notes),
    )
