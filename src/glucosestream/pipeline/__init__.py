"""The pipeline: discover raw batches → merge into curated.readings → daily metrics for the
patient-days touched → quality gate → publish atomically, or publish nothing."""

from __future__ import annotations

from glucosestream.pipeline.runner import RunReport, run_pipeline

__all__ = ["RunReport", "run_pipeline"]
