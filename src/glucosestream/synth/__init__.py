"""Synthetic CGM cohorts. ``generator`` is PURE (seeded numpy, no I/O); ``export`` writes files.

The generator here is deliberately simple (a circadian baseline, meals, autocorrelated noise,
sensor dropouts, clipping to the 40-400 mg/dL sensor range, integer mg/dL): enough to exercise
every stage. It is deterministic for a seed and works one chunk of patients at a time, so a
cohort larger than memory streams to disk.
"""

from __future__ import annotations

from glucosestream.synth.export import SYNTH_FORMATS, SynthReport, write_cohort
from glucosestream.synth.generator import PROFILES, CohortSpec, generate_chunks

__all__ = [
    "PROFILES",
    "SYNTH_FORMATS",
    "CohortSpec",
    "SynthReport",
    "generate_chunks",
    "write_cohort",
]
