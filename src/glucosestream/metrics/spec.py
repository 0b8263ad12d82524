"""The metric spec: one row per metric, and everything derived from it. PURE.

Each ``Metric`` row gives a metric's name, its group (the metrics computed together, which is
also the kernels' unit of work), unit, tier (``consensus`` or ``research``), the thresholds it
uses (named in ``thresholds``), its column in iglu 4.3.0's ``all_metrics`` (and in
``all_metrics(metrics_to_include = "consensus_only")``), its result type and its source (the
definitions are in docs/metrics.md, "The catalog"). From the rows come ``ALL`` and
``CONSENSUS`` (in row order), ``GROUPS`` (the kernel column order, held equal to
``kernels.patients.GROUPS`` by name in tests/test_metrics_spec.py), the iglu column mappings,
the results table's schema (``result_schemas``) and the metric table in docs/metrics.md
(``metric_table_markdown``, checked by tests/test_metrics_spec.py).

Adding a metric is one row here, one reference function (``reference``) and one kernel writer
(``kernels``): docs/contributing.md.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Final, Literal

from glucosestream.metrics.thresholds import (
    GRADE_HYPER_ABOVE_MG_DL,
    GRADE_HYPO_BELOW_MG_DL,
    RANGE_63_140_LOW_MG_DL,
    RODBARD_LLTR_MG_DL,
    RODBARD_ULTR_MG_DL,
    TAR_LEVEL1_MG_DL,
    TAR_LEVEL2_MG_DL,
    TBR_LEVEL1_MG_DL,
    TBR_LEVEL2_MG_DL,
    TIGHT_RANGE_HIGH_MG_DL,
)

__all__ = [
    "ALL",
    "BY_NAME",
    "CONSENSUS",
    "GROUPS",
    "IGLU_ALL_METRICS",
    "IGLU_CONSENSUS_ONLY",
    "IGLU_EPISODE_COLUMNS",
    "METRICS",
    "Metric",
    "ResultType",
    "Tier",
    "metric_table_markdown",
]

Tier = Literal["consensus", "research"]
# float; int: a count (int64 in the results table); bool: a flag (1.0/0.0 in compute_metrics);
# string: text; local_time: wall-clock "YYYY-MM-DD HH:MM:SS" (a timestamp in the results table).
ResultType = Literal["float", "int", "bool", "string", "local_time"]


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    group: str
    unit: str
    tier: Tier
    source: str  # the definition's paper (docs/metrics.md, "The catalog", gives it in full)
    result: ResultType = "float"
    thresholds_mg_dl: tuple[float, ...] = ()
    iglu: str | None = None  # the all_metrics column carrying the same quantity
    iglu_consensus: str | None = None  # the all_metrics(consensus_only) column


def _group(group: str, tier: Tier, source: str) -> functools.partial[Metric]:
    return functools.partial(Metric, group=group, tier=tier, source=source)


_LV1_LOW, _LV2_LOW = TBR_LEVEL1_MG_DL, TBR_LEVEL2_MG_DL
_LV1_HIGH, _LV2_HIGH = TAR_LEVEL1_MG_DL, TAR_LEVEL2_MG_DL
_BANDS: Final = (  # (suffix, thresholds, iglu all_metrics, iglu consensus_only)
    ("pct_below_54", (_LV2_LOW,), "below_54", "below_54"),
    ("pct_54_69", (_LV2_LOW, _LV1_LOW), None, None),
    ("pct_70_180", (_LV1_LOW, _LV1_HIGH), "in_range_70_180", "in_range_70_180"),
    ("pct_181_250", (_LV1_HIGH, _LV2_HIGH), None, None),
    ("pct_above_250", (_LV2_HIGH,), "above_250", "above_250"),
    ("pct_below_70", (_LV1_LOW,), "below_70", "below_70"),
    ("pct_above_180", (_LV1_HIGH,), "above_180", "above_180"),
    ("pct_70_140", (_LV1_LOW, TIGHT_RANGE_HIGH_MG_DL), None, "in_range_70_140"),
)
_EPISODE_KINDS: Final = (  # (kind, thresholds: start[, end], iglu all_metrics, consensus_only)
    ("hypo_lv1", (_LV1_LOW,), "hypo_lv1", None),
    ("hypo_lv2", (_LV2_LOW,), "hypo_lv2", None),
    ("hypo_extended", (_LV1_LOW,), "hypo_extended", "total_extended_hypo_episodes"),
    ("hyper_lv1", (_LV1_HIGH,), "hyper_lv1", None),
    ("hyper_lv2", (_LV2_HIGH,), "hyper_lv2", None),
    ("hyper_extended", (_LV2_HIGH, _LV1_HIGH), None, "total_extended_hyper_episodes"),
    ("hypo_lv1_excl", (_LV1_LOW, _LV2_LOW), "hypo_lv1_excl", None),
    ("hyper_lv1_excl", (_LV1_HIGH, _LV2_HIGH), "hyper_lv1_excl", None),
)


def _coverage() -> list[Metric]:
    m = _group("coverage", "consensus", "Battelino 2019; Danne 2017")
    return [
        m(name="readings", unit="count", result="int"),
        m(name="days", unit="days", iglu="ndays", iglu_consensus="ndays"),
        m(name="active_pct", unit="%", iglu="active_percent", iglu_consensus="active_percent"),
        m(name="grid_coverage_pct", unit="%"),
        m(name="longest_gap_min", unit="min"),
        m(name="gaps_over_inter_gap", unit="count", result="int"),
        m(name="sufficient_14d", unit="flag", result="bool"),
        m(name="start_time", unit="local time", result="local_time", iglu="start_date",
          iglu_consensus="start_date"),
        m(name="end_time", unit="local time", result="local_time", iglu="end_date",
          iglu_consensus="end_date"),
    ]  # fmt: skip


def _core() -> list[Metric]:
    m = _group("core", "consensus", "Battelino 2019; Bergenstal 2018 (GMI)")
    return [
        m(name="mean_mg_dl", unit="mg/dL", iglu="Mean", iglu_consensus="mean"),
        m(name="sd_mg_dl", unit="mg/dL", iglu="SD", iglu_consensus="SD"),
        m(name="cv_pct", unit="%", iglu="CV", iglu_consensus="CV"),
        m(name="gmi_pct", unit="%", iglu="GMI", iglu_consensus="GMI"),
    ]


def _ranges() -> list[Metric]:
    m = _group("ranges", "consensus", "Battelino 2019, 2023")
    count_based = [
        m(name=n, unit="%", thresholds_mg_dl=t, iglu=i, iglu_consensus=c) for n, t, i, c in _BANDS
    ]
    time_weighted = [m(name=f"tw_{n}", unit="%", thresholds_mg_dl=t) for n, t, _, _ in _BANDS]
    return count_based + time_weighted


def _gri() -> list[Metric]:
    m = _group("gri", "consensus", "Klonoff 2023")
    bands = (_LV2_LOW, _LV1_LOW, _LV1_HIGH, _LV2_HIGH)
    return [
        m(name="gri", unit="1", thresholds_mg_dl=bands, iglu="GRI", iglu_consensus="GRI"),
        m(name="gri_hypo", unit="1", thresholds_mg_dl=bands[:2]),
        m(name="gri_hyper", unit="1", thresholds_mg_dl=bands[2:]),
        m(name="gri_zone", unit="A-E", result="string"),
    ]


def _episodes() -> list[Metric]:
    m = _group("episodes", "consensus", "Battelino 2023")
    rows = []
    for kind, t, iglu, consensus_only in _EPISODE_KINDS:
        rows += [
            m(name=f"{kind}_episodes", unit="count", result="int", thresholds_mg_dl=t,
              iglu_consensus=consensus_only),
            m(name=f"{kind}_per_day", unit="per day", thresholds_mg_dl=t, iglu=iglu),
            m(name=f"{kind}_duration_min", unit="min", thresholds_mg_dl=t),
            m(name=f"{kind}_mean_mg_dl", unit="mg/dL", thresholds_mg_dl=t),
        ]  # fmt: skip
    return rows


def _distribution() -> list[Metric]:
    m = _group("distribution", "research", "Hyndman & Fan 1996 (type 7); Hampel 1974 (MAD)")
    tight = (RANGE_63_140_LOW_MG_DL, TIGHT_RANGE_HIGH_MG_DL)
    return [
        m(name="min_mg_dl", unit="mg/dL", iglu="Min."),
        m(name="p05_mg_dl", unit="mg/dL"),
        m(name="q1_mg_dl", unit="mg/dL", iglu="1st Qu."),
        m(name="median_mg_dl", unit="mg/dL", iglu="Median"),
        m(name="q3_mg_dl", unit="mg/dL", iglu="3rd Qu."),
        m(name="p95_mg_dl", unit="mg/dL"),
        m(name="max_mg_dl", unit="mg/dL", iglu="Max."),
        m(name="iqr_mg_dl", unit="mg/dL", iglu="IQR"),
        m(name="range_mg_dl", unit="mg/dL", iglu="range"),
        m(name="mad_mg_dl", unit="mg/dL", iglu="MAD"),
        m(name="pct_above_140", unit="%", thresholds_mg_dl=tight[1:], iglu="above_140"),
        m(name="pct_63_140", unit="%", thresholds_mg_dl=tight, iglu="in_range_63_140"),
    ]


def _risk() -> list[Metric]:
    m = _group("risk", "research", "Kovatchev 1997-2006; Hill 2007; Rodbard 2009")
    grade = (GRADE_HYPO_BELOW_MG_DL, _LV1_LOW, GRADE_HYPER_ABOVE_MG_DL)
    return [
        m(name="lbgi", unit="1", iglu="LBGI"),
        m(name="hbgi", unit="1", iglu="HBGI"),
        m(name="adrr", unit="1", iglu="ADRR", source="Kovatchev 2006"),
        m(name="grade", unit="1", iglu="GRADE", source="Hill 2007"),
        m(name="grade_hypo_pct", unit="%", thresholds_mg_dl=grade[:1], iglu="GRADE_hypo",
          source="Hill 2007"),
        m(name="grade_eugly_pct", unit="%", thresholds_mg_dl=grade[1:], iglu="GRADE_eugly",
          source="Hill 2007"),
        m(name="grade_hyper_pct", unit="%", thresholds_mg_dl=grade[2:], iglu="GRADE_hyper",
          source="Hill 2007"),
        m(name="hyper_index", unit="1", thresholds_mg_dl=(RODBARD_ULTR_MG_DL,),
          iglu="hyper_index", source="Rodbard 2009"),
        m(name="hypo_index", unit="1", thresholds_mg_dl=(RODBARD_LLTR_MG_DL,),
          iglu="hypo_index", source="Rodbard 2009"),
        m(name="igc", unit="1", thresholds_mg_dl=(RODBARD_LLTR_MG_DL, RODBARD_ULTR_MG_DL),
          iglu="IGC", source="Rodbard 2009"),
        m(name="j_index", unit="1", iglu="J_index", source="Wojcicki 1995"),
        m(name="m_value", unit="1", iglu="M_value", source="Schlichtkrull 1965"),
        m(name="ea1c_pct", unit="%", iglu="eA1C", source="Nathan 2008"),
        m(name="cogi", unit="1", thresholds_mg_dl=(_LV1_LOW, _LV1_HIGH), iglu="COGI",
          source="Leelarathna 2020"),
    ]  # fmt: skip


def _variability() -> list[Metric]:
    m = _group("variability", "research", "Rodbard 2009")
    return [
        m(name="conga_24h", unit="mg/dL", iglu="Conga", source="McDonnell 2005"),
        m(name="conga_1h", unit="mg/dL", source="McDonnell 2005"),
        m(name="modd", unit="mg/dL", iglu="MODD", source="Service & Nelson 1980"),
        m(name="gvp_pct", unit="%", iglu="GVP", source="Peyser 2018"),
        m(name="mag_mg_dl_per_h", unit="mg/dL/h", iglu="MAG", source="Hermanides 2010"),
        m(name="mag_iglu_all_metrics", unit="mg/dL/h", source="iglu 4.3.0 all_metrics"),
        m(name="sd_roc_mg_dl_per_min", unit="mg/dL/min", iglu="SD.Roc",
          source="Clarke & Kovatchev 2009"),
        m(name="cv_mean_pct", unit="%", iglu="CV_Measures_Mean", source="Umpierrez 2018"),
        m(name="cv_sd_pct", unit="%", iglu="CV_Measures_SD", source="Umpierrez 2018"),
        m(name="sd_w", unit="mg/dL", iglu="SDw"),
        m(name="sd_hhmm", unit="mg/dL", iglu="SDhhmm"),
        m(name="sd_wsh", unit="mg/dL", iglu="SDwsh"),
        m(name="sd_dm", unit="mg/dL", iglu="SDdm"),
        m(name="sd_b", unit="mg/dL", iglu="SDb"),
        m(name="sd_bdm", unit="mg/dL", iglu="SDbdm"),
        m(name="auc_hourly_mg_dl", unit="mg/dL", iglu="AUC", source="Danne 2017"),
    ]  # fmt: skip


def _mage() -> list[Metric]:
    m = _group("mage", "research", "Fernandes 2022; Service 1970")
    return [
        m(name="mage_mg_dl", unit="mg/dL", iglu="MAGE"),
        m(name="mage_plus_mg_dl", unit="mg/dL"),
        m(name="mage_minus_mg_dl", unit="mg/dL"),
        m(name="mage_service_mg_dl", unit="mg/dL"),
        m(name="mage_max_mg_dl", unit="mg/dL"),
        m(name="mage_naive_mg_dl", unit="mg/dL", source="iglu mage(version = 'naive')"),
    ]


def _pgs() -> list[Metric]:
    m = _group("pgs", "research", "Hirsch 2017")
    return [m(name="pgs", unit="1", thresholds_mg_dl=(_LV2_LOW, _LV1_LOW, _LV1_HIGH), iglu="PGS")]


def _day_night() -> list[Metric]:
    m = _group("day_night", "research", "iglu calculate_sleep_wake (night: [00:00, 06:00))")
    tir = (_LV1_LOW, _LV1_HIGH)
    return [
        m(name="mean_mg_dl_night", unit="mg/dL"),
        m(name="pct_70_180_night", unit="%", thresholds_mg_dl=tir),
        m(name="mean_mg_dl_day", unit="mg/dL"),
        m(name="pct_70_180_day", unit="%", thresholds_mg_dl=tir),
    ]


# The catalog, group by group in the kernels' column order.
METRICS: Final[tuple[Metric, ...]] = tuple(
    row
    for rows in (
        _coverage, _core, _ranges, _gri, _episodes, _distribution, _risk, _variability, _mage,
        _pgs, _day_night,
    )
    for row in rows()
)  # fmt: skip
BY_NAME: Final = {m.name: m for m in METRICS}
ALL: Final = tuple(m.name for m in METRICS)
CONSENSUS: Final = tuple(m.name for m in METRICS if m.tier == "consensus")
GROUPS: Final[tuple[tuple[str, tuple[str, ...]], ...]] = tuple(
    (group, tuple(m.name for m in METRICS if m.group == group))
    for group in dict.fromkeys(m.group for m in METRICS)
)

# iglu 4.3.0's column orders (facts about iglu's output, not ours); the rows say which column
# carries which metric.
_IGLU_ALL_METRICS_ORDER: Final = (
    "ADRR", "COGI", "CV", "eA1C", "hypo_lv1", "hypo_lv2", "hypo_extended", "hyper_lv1",
    "hyper_lv2", "hypo_lv1_excl", "hyper_lv1_excl", "GMI", "GRI", "GRADE", "GRADE_eugly",
    "GRADE_hyper", "GRADE_hypo", "HBGI", "LBGI", "hyper_index", "hypo_index", "IGC", "IQR",
    "J_index", "M_value", "MAD", "MAGE", "active_percent", "ndays", "start_date", "end_date",
    "above_140", "above_180", "above_250", "below_54", "below_70", "in_range_63_140",
    "in_range_70_180", "PGS", "range", "SD", "Min.", "1st Qu.", "Median", "Mean", "3rd Qu.",
    "Max.", "Conga", "GVP", "MODD", "SD.Roc", "CV_Measures_Mean", "CV_Measures_SD", "AUC",
    "MAG", "SDw", "SDhhmm", "SDwsh", "SDdm", "SDb", "SDbdm",
)  # fmt: skip
_IGLU_CONSENSUS_ONLY_ORDER: Final = (
    "below_54", "below_70", "in_range_70_180", "above_180", "above_250", "SD", "mean", "CV",
    "active_percent", "ndays", "start_date", "end_date", "in_range_70_140", "GMI", "GRI",
    "total_extended_hypo_episodes", "total_extended_hyper_episodes",
)  # fmt: skip
_BY_IGLU: Final = {m.iglu: m.name for m in METRICS if m.iglu}
_BY_IGLU_CONSENSUS: Final = {m.iglu_consensus: m.name for m in METRICS if m.iglu_consensus}
# (iglu column, our metric), in iglu's column order.
IGLU_ALL_METRICS: Final = tuple((c, _BY_IGLU[c]) for c in _IGLU_ALL_METRICS_ORDER)
IGLU_CONSENSUS_ONLY: Final = tuple((c, _BY_IGLU_CONSENSUS[c]) for c in _IGLU_CONSENSUS_ONLY_ORDER)
# iglu's episode_calculation: one row per id x (type, level), in this order.
IGLU_EPISODE_COLUMNS: Final = (
    "id", "type", "level", "avg_ep_per_day", "avg_ep_duration", "avg_ep_gl", "total_episodes",
)  # fmt: skip


def _number(value: float) -> str:
    return f"{value:g}"


def metric_table_markdown() -> str:
    """The metric table of docs/metrics.md ("Every metric"), one line per row of the spec."""
    lines = [
        "| metric | group | set | unit | result | thresholds (mg/dL) | iglu column | source |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in METRICS:
        thresholds = ", ".join(_number(t) for t in m.thresholds_mg_dl)
        iglu = " / ".join(f"`{c}`" for c in dict.fromkeys((m.iglu, m.iglu_consensus)) if c)
        lines.append(
            f"| `{m.name}` | {m.group} | {m.tier} | {m.unit} | {m.result} | {thresholds} "
            f"| {iglu} | {m.source} |"
        )
    return "\n".join(lines) + "\n"
