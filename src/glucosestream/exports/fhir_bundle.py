"""The FHIR R4 export: one transaction Bundle per patient, as the HL7 CGM guide submits it.

``write_fhir`` reads each patient's published readings of the window, and writes a Bundle of
the Patient (an identifier only), the CGM Devices, every sensor reading as an Observation, the
CGM summary panel with its six members, and, unless asked not to, a DiagnosticReport carrying
the AGP report as PDF (``dashboard.report.render_agp_pdf``: headless Chromium; when it cannot
print, the bundle goes without and the report says why). Resources: ``exports.fhir_resources``.

The window is local days ``start``..``end`` (each optional): readings of those days are
exported; the summary is ``published.window_summary`` of the same window: from the first day
with data (or ``start``) to ``end``, never past the last complete local day (a partial newest
day is exported as readings but not counted), audited when the window is one published period.
The PDF is the AGP report of the 14 days ending on the summary's last day.

``out`` is a folder (one ``<id>.json`` per patient), or a ``.json`` file for one patient.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import pyarrow as pa

from glucosestream.config import Settings
from glucosestream.errors import ConfigError, NotFound
from glucosestream.exports import ExportReport, export_report
from glucosestream.exports.fhir_resources import (
    Entry,
    device_entry,
    patient_entry,
    reading_entries,
    report_entry,
    summary_entries,
    transaction_bundle,
)
from glucosestream.exports.window_readings import readings_by_patient
from glucosestream.metrics.report_window import REPORT_DAYS
from glucosestream.published import PublishedRun, window_summary
from glucosestream.readings import Unit

__all__ = ["FhirOptions", "write_fhir"]

log = logging.getLogger(__name__)

_SAFE_NAME: Final = re.compile(r"[^A-Za-z0-9._-]+")
_NAME_MAX_CHARS: Final = 80


@dataclass(frozen=True, slots=True)
class FhirOptions:
    """``unit`` of the values; ``pdf``: attach the AGP report; ``pseudonymous``: name the
    patient by its key (``identities`` then hold the keys)."""

    unit: Unit = "mg/dL"
    pdf: bool = True
    pseudonymous: bool = False


def write_fhir(
    run: PublishedRun,
    patient_keys: Sequence[str],
    window: tuple[dt.date | None, dt.date | None],
    out: Path,
    *,
    settings: Settings,
    identities: Mapping[str, str],
    options: FhirOptions = FhirOptions(),
    now: dt.datetime,
) -> ExportReport:
    """Write one transaction Bundle per patient of ``patient_keys`` with readings in
    ``window``; ``identities``: each key's id as written (as ingested, or the key)."""
    single = out.suffix.lower() == ".json"
    if single and len(patient_keys) != 1:
        raise ConfigError(f"{out.name} is one file: give a folder to export several patients")
    if not single:
        out.mkdir(parents=True, exist_ok=True)
    writer = _Writer(run, settings, options, now)
    started = time.perf_counter()
    for key, readings in readings_by_patient(run, patient_keys, window):
        identity = identities[key]
        if readings.num_rows == 0:
            writer.notes.append(f"{identity}: no published readings in the window, not written")
            continue
        path = out if single else out / f"{_file_name(identity, key)}.json"
        entries = writer.entries(key, identity, readings, window)
        _write_json(path, transaction_bundle(entries, now))
        writer.files.append(path)
        writer.rows["patients"] += 1
    if writer.pdf_failed:
        writer.notes.append(f"AGP PDF left out: {writer.pdf_failed}")
    log.info(
        "export format=fhir patients=%d readings=%d duration_ms=%d",
        writer.rows["patients"],
        writer.rows["readings"],
        (time.perf_counter() - started) * 1000,
    )
    return export_report(writer.files, writer.rows, writer.notes)


class _Writer:
    """The entries of each patient's bundle, and what was written so far."""

    def __init__(
        self, run: PublishedRun, settings: Settings, options: FhirOptions, now: dt.datetime
    ) -> None:
        self.run, self.settings, self.options, self.now = run, settings, options, now
        self.files: list[Path] = []
        self.rows = {"patients": 0, "readings": 0, "devices": 0, "summaries": 0, "reports": 0}
        self.notes: list[str] = []
        self.pdf_failed: str | None = None

    def entries(
        self,
        key: str,
        identity: str,
        readings: pa.Table,
        window: tuple[dt.date | None, dt.date | None],
    ) -> list[Entry]:
        """Patient, devices, readings, then the summary and the PDF report."""
        unit = self.options.unit
        entries = [patient_entry(key, identity, pseudonymous=self.options.pseudonymous)]
        devices = readings.group_by(["device_id", "source"]).aggregate([]).to_pylist()
        entries += [device_entry(key, d["device_id"], d["source"]) for d in devices]
        observations = list(reading_entries(readings, key, unit))
        entries += observations
        self.rows["devices"] += len(devices)
        self.rows["readings"] += len(observations)
        try:
            summary = window_summary(self.run, key, *window, now=self.now)
        except NotFound as err:
            self.notes.append(f"{identity}: no summary ({err})")
            return entries
        period = (summary.start, summary.end)
        panel = summary_entries(key, summary.metrics, period, unit)
        entries += panel
        self.rows["summaries"] += 1
        report = self._report(key, period, panel[0]["fullUrl"])
        if report is not None:
            entries.append(report)
            self.rows["reports"] += 1
        return entries

    def _report(self, key: str, period: tuple[dt.date, dt.date], summary_url: str) -> Entry | None:
        """The AGP report of the 14 days ending on the summary's last day, as a DiagnosticReport
        (None when PDFs are not wanted or Chromium cannot print them: said once in the notes)."""
        if not self.options.pdf or self.pdf_failed:
            return None
        from glucosestream.dashboard.report import render_agp_pdf

        unit: Literal["mg_dl", "mmol_l"] = "mg_dl" if self.options.unit == "mg/dL" else "mmol_l"
        with tempfile.TemporaryDirectory(prefix="glucosestream-export-") as tmp:
            path = Path(tmp) / "agp.pdf"
            try:
                render_agp_pdf(self.settings, key, path, end=period[1], unit=unit)
            except ConfigError as err:
                self.pdf_failed = f"{err}; pass --no-pdf to leave it out without this note"
                return None
            pdf = path.read_bytes()
        agp = (period[1] - dt.timedelta(days=REPORT_DAYS - 1), period[1])
        same = agp == period
        return report_entry(
            key, pdf, agp, summary_url=summary_url if same else None, issued_at=self.now
        )


def _file_name(identity: str, key: str) -> str:
    """A file name for a patient: the id with only safe characters; the key's first eight
    digits added when the id had to be changed (two ids must not meet in one name)."""
    safe = _SAFE_NAME.sub("_", identity).strip("._")[:_NAME_MAX_CHARS]
    return safe if safe == identity else f"{safe or 'patient'}-{key[:8]}"


def _write_json(path: Path, document: dict[str, Any]) -> None:
    """Compact JSON; ``dumps`` in one piece (the C encoder: ``json.dump`` streams through the
    pure-Python one, measured 70 % of a bundle's time)."""
    path.write_text(json.dumps(document, separators=(",", ":"), ensure_ascii=False), "utf-8")
