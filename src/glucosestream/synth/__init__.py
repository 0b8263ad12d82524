"""Synthetic CGM cohorts with physiology, sensor artefacts and real export formats.

PURE modules (no I/O, no clock): ``profiles`` (who the patients are), ``grid`` (time steps and
local clocks), ``schedule`` (meals, boluses, exercise), ``physiology`` (the glucose-insulin
compartment model), ``sensor`` (sessions, calibration, noise, artefacts, clipping),
``fictional_identity`` (fictional names and serials), ``therapy`` (pump or pens, by
sub-population), ``simulated_events`` (the doses, basal, carbohydrates and exercise the model
simulated), ``generator`` (chunks of patients as Arrow tables) and the ``exporters``
renderers. ``export`` writes files. A spec always gives the same bytes; a cohort streams chunk
by chunk, so one larger than memory can be written.
"""

from __future__ import annotations

from glucosestream.synth.export import SYNTH_FORMATS, SynthReport, write_cohort
from glucosestream.synth.generator import PROFILES, CohortSpec, generate_chunks, generate_events

__all__ = [
    "PROFILES",
    "SYNTH_FORMATS",
    "CohortSpec",
    "SynthReport",
    "generate_chunks",
    "generate_events",
    "write_cohort",
]
