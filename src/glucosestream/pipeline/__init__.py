"""The pipeline: discover raw batches → merge into curated.readings → daily metrics, period
results and sensor sessions for the patient-days touched → quality gate → publish atomically,
or publish nothing.

``table_registry`` lists every table of the lake (the lake is opened with it); ``sensor_wear``
infers sensor sessions; ``steps`` and ``runner`` run one run."""

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
