"""The pipeline: discover raw batches → merge into curated.readings → daily metrics for the
patient-days touched → quality gate → publish atomically, or publish nothing."""

from __future__ import annotations

from glucosestream.pipeline.runner import (
    RejectedBatch,
    RunReport,
    SetAside,
    StepTiming,
    run_pipeline,
)
from glucosestream.pipeline.steps import STEPS

__all__ = ["STEPS", "RejectedBatch", "RunReport", "SetAside", "StepTiming", "run_pipeline"]
