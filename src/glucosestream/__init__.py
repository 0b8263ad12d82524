"""GlucoseStream: an open lakehouse for continuous glucose monitoring (CGM) data."""

from __future__ import annotations

from glucosestream.config import Settings
from glucosestream.errors import GlucoseStreamError
from glucosestream.ingest import IngestReport, ingest_path, ingest_records
from glucosestream.metrics import compute_metrics
from glucosestream.pipeline import RunReport, run_pipeline

__version__ = "0.1.0"

__all__ = [
    "GlucoseStreamError",
    "IngestReport",
    "RunReport",
    "Settings",
    "__version__",
    "compute_metrics",
    "ingest_path",
    "ingest_records",
    "run_pipeline",
]
