"""The alert rules: the defaults, and a patient's overrides from the ``alert_rules`` table. PURE.

Each kind has one rule. The defaults follow the issue and their sources (docs/alerts.md):

* ``urgent_low``: glucose at or below 55 mg/dL. Dexcom's Urgent Low alarm is fixed at 55 and
  cannot be turned off (Dexcom G5 Mobile User Guide, "Alarm and Alerts"), so no override can
  disable it or move it.
* ``low`` below 70 mg/dL and ``high`` above 250 mg/dL: the level 1 hypoglycaemia and level 2
  hyperglycaemia boundaries of Battelino et al., Diabetes Care 2019;42:1593-1603.
* ``urgent_low_soon``: the AR2 forecast (``alerts.forecast``) at or below 55 mg/dL within the
  next 20 minutes (Dexcom's Urgent Low Soon horizon).
* ``rising_fast`` / ``falling_fast``: faster than 2 mg/dL/min (Dexcom's Rise and Fall Rate).
* ``stale_data``: no reading for ``settings.alerts.stale_warn_min`` minutes (a warning), and for
  ``stale_urgent_min`` (the same alert, escalated to urgent).
* ``hypo_level2_episode``: below 54 mg/dL for 15 minutes, the start of a level 2 episode of
  Battelino et al., Lancet Diabetes Endocrinol 2023;11:42-57.

A row of ``alert_rules`` whose ``patient_key`` is ``"*"`` changes the site's default; a row of
the patient's key changes that patient's rule and wins over the site's. A row may turn its kind
off (``enabled``) or change the number the kind uses: ``threshold_mg_dl`` (mg/dL; for the two
rate kinds, mg/dL/min) or ``minutes`` (the forecast horizon, the stale warning, the episode's
duration). A value outside the range a kind allows is not used (the default stays) and the row
is named in a warning, so a bad row can never silence an alert.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from glucosestream.alerts.changes import KINDS
from glucosestream.config import AlertSettings

__all__ = [
    "DEFAULT_RULES",
    "HIGH_MG_DL",
    "HYPO_LEVEL2_MG_DL",
    "LOW_MG_DL",
    "RATE_FAST_MG_DL_MIN",
    "SITE_DEFAULT",
    "URGENT_LOW_MG_DL",
    "URGENT_LOW_SOON_HORIZON_MIN",
    "Rule",
    "RuleRow",
    "Rules",
    "rule_row_problem",
    "rules_for",
]

log = logging.getLogger(__name__)

SITE_DEFAULT: Final = "*"  # the alert_rules patient_key of the site's defaults

URGENT_LOW_MG_DL: Final = 55.0  # Dexcom's fixed Urgent Low alarm (G5 Mobile User Guide)
LOW_MG_DL: Final = 70.0  # level 1 hypoglycaemia below 70 (Battelino 2019)
HIGH_MG_DL: Final = 250.0  # level 2 hyperglycaemia above 250 (Battelino 2019)
URGENT_LOW_SOON_HORIZON_MIN: Final = 20.0  # Dexcom Urgent Low Soon; Puhr et al. 2019
RATE_FAST_MG_DL_MIN: Final = 2.0  # Dexcom Rise/Fall Rate "rapid": 2 mg/dL/min (G5 guide)
HYPO_LEVEL2_MG_DL: Final = 54.0  # level 2 hypoglycaemia below 54 (Battelino 2023)
HYPO_EPISODE_MIN: Final = 15.0  # an episode starts after 15 minutes below (Battelino 2023)

# What an override may set, per kind: (lowest, highest) of the number it uses.
_GLUCOSE_RANGE: Final = (40.0, 400.0)
_RATE_RANGE: Final = (0.5, 10.0)
_ALLOWED: Final[Mapping[str, tuple[str, tuple[float, float]]]] = {
    "low": ("threshold_mg_dl", _GLUCOSE_RANGE),
    "high": ("threshold_mg_dl", _GLUCOSE_RANGE),
    "urgent_low_soon": ("minutes", (5.0, 30.0)),
    "rising_fast": ("rate_mg_dl_min", _RATE_RANGE),
    "falling_fast": ("rate_mg_dl_min", _RATE_RANGE),
    "stale_data": ("minutes", (5.0, 24 * 60.0)),
    "hypo_level2_episode": ("minutes", (5.0, 120.0)),
}


@dataclass(frozen=True, slots=True)
class Rule:
    """One kind's rule: whether it is on and the numbers it uses (None where it uses none).

    ``threshold_mg_dl`` is the glucose level (urgent_low, low, high, urgent_low_soon and the
    episode); ``rate_mg_dl_min`` the rate of the two rate kinds; ``minutes`` the forecast horizon
    (urgent_low_soon), the stale-data warning, or the episode's duration."""

    kind: str
    enabled: bool = True
    threshold_mg_dl: float | None = None
    rate_mg_dl_min: float | None = None
    minutes: float | None = None


@dataclass(frozen=True, slots=True)
class RuleRow:
    """One row of the ``alert_rules`` table, as the store reads it."""

    patient_key: str
    kind: str
    enabled: bool
    threshold_mg_dl: float | None
    minutes: float | None


DEFAULT_RULES: Final[Mapping[str, Rule]] = {
    "urgent_low": Rule("urgent_low", threshold_mg_dl=URGENT_LOW_MG_DL),
    "low": Rule("low", threshold_mg_dl=LOW_MG_DL),
    "high": Rule("high", threshold_mg_dl=HIGH_MG_DL),
    "urgent_low_soon": Rule(
        "urgent_low_soon", threshold_mg_dl=URGENT_LOW_MG_DL, minutes=URGENT_LOW_SOON_HORIZON_MIN
    ),
    "rising_fast": Rule("rising_fast", rate_mg_dl_min=RATE_FAST_MG_DL_MIN),
    "falling_fast": Rule("falling_fast", rate_mg_dl_min=RATE_FAST_MG_DL_MIN),
    "stale_data": Rule("stale_data", minutes=20.0),  # replaced by settings.alerts.stale_warn_min
    "hypo_level2_episode": Rule(
        "hypo_level2_episode", threshold_mg_dl=HYPO_LEVEL2_MG_DL, minutes=HYPO_EPISODE_MIN
    ),
}


@dataclass(frozen=True, slots=True)
class Rules:
    """A patient's rules, one per kind, and when stale data becomes urgent."""

    by_kind: Mapping[str, Rule]
    stale_urgent_min: float

    def get(self, kind: str) -> Rule:
        return self.by_kind[kind]

    def enabled(self, kind: str) -> bool:
        return self.by_kind[kind].enabled


def rules_for(patient_key: str, rows: Iterable[RuleRow], settings: AlertSettings) -> Rules:
    """The patient's rules: the defaults (stale minutes from ``settings``), then the site's rows
    (``"*"``), then the patient's own. Rows of other patients are ignored."""
    by_kind = dict(DEFAULT_RULES)
    by_kind["stale_data"] = Rule("stale_data", minutes=settings.stale_warn_min)
    ordered = sorted(
        (r for r in rows if r.patient_key in (SITE_DEFAULT, patient_key)),
        key=lambda r: r.patient_key != SITE_DEFAULT,  # the site's first, the patient's last
    )
    for row in ordered:
        rule = _overridden(by_kind, row)
        if rule is not None:
            by_kind[row.kind] = rule
    return Rules(by_kind, settings.stale_urgent_min)


def rule_row_problem(row: RuleRow) -> str | None:
    """Why a row cannot be used (one sentence, with what is allowed), or None if it can."""
    if row.kind not in KINDS:
        return f"alert rule of unknown kind {row.kind!r}; the kinds are {', '.join(KINDS)}"
    if row.kind == "urgent_low":
        return (
            f"the urgent low alarm is fixed at {URGENT_LOW_MG_DL:.0f} mg/dL and cannot be turned "
            "off, so it has no rule"
        )
    field_name, (lowest, highest) = _ALLOWED[row.kind]
    value = row.minutes if field_name == "minutes" else row.threshold_mg_dl
    if value is not None and not (math.isfinite(value) and lowest <= value <= highest):
        return f"alert rule for {row.kind}: {field_name}={value!r} is outside {lowest}-{highest}"
    return None


def _overridden(by_kind: Mapping[str, Rule], row: RuleRow) -> Rule | None:
    """The rule a row makes of the current one, or None (the row is not used, and said so)."""
    problem = rule_row_problem(row)
    if problem is not None:
        owner = "the site's" if row.patient_key == SITE_DEFAULT else "a patient's"
        log.warning("%s ignored (%s row); the default stays", problem, owner)
        return None
    current = dataclasses.replace(by_kind[row.kind], enabled=bool(row.enabled))
    field_name, _ = _ALLOWED[row.kind]
    value = row.minutes if field_name == "minutes" else row.threshold_mg_dl
    if value is None:
        return current
    if field_name == "minutes":
        return dataclasses.replace(current, minutes=float(value))
    if field_name == "rate_mg_dl_min":
        return dataclasses.replace(current, rate_mg_dl_min=float(value))
    return dataclasses.replace(current, threshold_mg_dl=float(value))
