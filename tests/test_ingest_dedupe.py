"""Each reading once: the same export twice, overlapping exports, duplicates within a file."""

from __future__ import annotations

import csv

from glucosestream.ingest import ingest_path
from glucosestream.pipeline import run_pipeline

from .conftest import DATA

DEXCOM = DATA / "samples" / "dexcom_clarity" / "cgmquantify_test_file_g6_12col.csv"


def dexcom_lines():
    """The sample's header, preamble records and EGV records, as text lines."""
    lines = DEXCOM.read_text(encoding="utf-8-sig").splitlines(keepends=True)
    kinds = [row[2] for row in csv.reader(lines)]
    egv = [line for line, kind in zip(lines, kinds, strict=True) if kind == "EGV"]
    other = [line for line, kind in zip(lines[1:], kinds[1:], strict=True) if kind != "EGV"]
    return lines[0], other, egv


def test_the_same_export_twice_is_one_set_of_readings(settings, clock):
    _, _, egv = dexcom_lines()
    first = ingest_path(settings, DEXCOM, patient_id="P", tz="UTC", now=clock)
    again = ingest_path(settings, DEXCOM, patient_id="P", tz="UTC", now=clock)
    assert (first.accepted, again.accepted, again.already_ingested_as) == (
        len(egv),
        0,
        first.batch_id,
    )
    run = run_pipeline(settings, now=clock)
    assert (run.status, run.readings_new, run.duplicates) == ("published", len(egv), 0)


def test_overlapping_exports_give_each_reading_once(settings, tmp_path, clock):
    header, preamble, egv = dexcom_lines()
    early = tmp_path / "early.csv"
    late = tmp_path / "late.csv"
    early.write_text(header + "".join(preamble) + "".join(egv[:1500]))
    late.write_text(header + "".join(preamble) + "".join(egv[1000:]))
    first = ingest_path(settings, early, patient_id="P", tz="UTC", now=clock)
    run_one = run_pipeline(settings, now=clock)
    second = ingest_path(settings, late, patient_id="P", tz="UTC", now=clock)
    run_two = run_pipeline(settings, now=clock)
    assert (first.accepted, second.accepted) == (1500, len(egv) - 1000)
    assert run_one.readings_new + run_two.readings_new == len(egv)
    assert run_two.duplicates == 500  # the overlap


def test_a_reading_listed_twice_in_one_export_is_counted_once(settings, tmp_path, clock):
    header, preamble, egv = dexcom_lines()
    path = tmp_path / "twice.csv"
    path.write_text(header + "".join(preamble) + "".join(egv[:100]) + "".join(egv[50:60]))
    report = ingest_path(settings, path, patient_id="P", tz="UTC", now=clock)
    assert (report.received, report.accepted, report.duplicates) == (110, 100, 10)
