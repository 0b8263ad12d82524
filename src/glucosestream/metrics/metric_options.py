"""How the catalog is computed: published definitions or iglu 4.3.0's behaviour. PURE.

``compat="published"`` (the default) uses the published definitions; ``compat="iglu"``
reproduces iglu 4.3.0, which differs in how readings sharing a timestamp are treated, in the
MAG column, in extended hyperglycaemia and in MAGE for a trace whose moving averages never
cross (docs/metrics.md, "Two modes").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from glucosestream.metrics.thresholds import DEFAULT_INTER_GAP_MIN

__all__ = ["Compat", "MetricOptions"]

Compat = Literal["published", "iglu"]


@dataclass(frozen=True, slots=True)
class MetricOptions:
    compat: Compat = "published"
    inter_gap_min: float = DEFAULT_INTER_GAP_MIN
