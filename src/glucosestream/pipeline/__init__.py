"""The pipeline: discover raw batches → merge into curated.readings → daily metrics, period
results, the rolling summary and sensor sessions for the patient-days touched → quality gate →
publish atomically, or publish nothing.

``table_registry`` lists every table of the lake (the lake is opened with it); ``sensor_wear``
infers sensor sessions; ``rolling_summary`` computes each touched patient's last 14 complete
days and the 14 before; ``steps``, ``run_state`` and ``runner`` run one run (``stepwise``:
each step in its own process, for AWS Step Functions)."""

from __future__ import annotations

from glucosestream.pipeline.run_report import RejectedBatch, RunReport, SetAside, StepTiming
from glucosestream.pipeline.runner import run_pipeline
from glucosestream.pipeline.steps import STEPS

__all__ = ["STEPS", "RejectedBatch", "RunReport", "SetAside", "StepTiming", "run_pipeline"]
