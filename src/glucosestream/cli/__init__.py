"""The ``glucosestream`` command. Thin: parse → Settings → call a stage → print its report.

``base`` holds the group and the options every command shares; ``setup`` the commands that make
or serve data (demo, synth, serve, token, clinic); ``lake`` the commands over a lake (ingest,
run, runs, metrics, maintain, report, audit); ``alerts`` the alert and webhook commands;
``export_command`` the export for other systems (FHIR, OMOP, tidy CSV/Parquet);
``patient_identity`` who a patient is (patient label, patient find); ``render`` their
human-readable text.
"""

from __future__ import annotations

from glucosestream.cli import alerts, export_command, lake, patient_identity, setup
from glucosestream.cli.base import main

__all__ = ["main"]

# importing them registers their commands on ``main``
_COMMAND_MODULES = (alerts, export_command, lake, patient_identity, setup)
