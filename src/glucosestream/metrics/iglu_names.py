"""Column names of iglu 4.3.0's ``all_metrics`` for the catalog's metrics. PURE.

So that R users can diff results column by column: ``ALL_METRICS`` is the header of
``all_metrics(data)`` in order, ``CONSENSUS_ONLY`` that of
``all_metrics(data, metrics_to_include = "consensus_only")``; each maps iglu's column to the
catalog metric that carries the same quantity. The MAG column takes ``mag_iglu_all_metrics``
only when iglu compatibility is asked for (docs/metrics.md).
"""

from __future__ import annotations

from typing import Final

__all__ = ["ALL_METRICS", "CONSENSUS_ONLY", "EPISODE_COLUMNS"]

ALL_METRICS: Final = (
    ("ADRR", "adrr"),
    ("COGI", "cogi"),
    ("CV", "cv_pct"),
    ("eA1C", "ea1c_pct"),
    ("hypo_lv1", "hypo_lv1_per_day"),
    ("hypo_lv2", "hypo_lv2_per_day"),
    ("hypo_extended", "hypo_extended_per_day"),
    ("hyper_lv1", "hyper_lv1_per_day"),
    ("hyper_lv2", "hyper_lv2_per_day"),
    ("hypo_lv1_excl", "hypo_lv1_excl_per_day"),
    ("hyper_lv1_excl", "hyper_lv1_excl_per_day"),
    ("GMI", "gmi_pct"),
    ("GRI", "gri"),
    ("GRADE", "grade"),
    ("GRADE_eugly", "grade_eugly_pct"),
    ("GRADE_hyper", "grade_hyper_pct"),
    ("GRADE_hypo", "grade_hypo_pct"),
    ("HBGI", "hbgi"),
    ("LBGI", "lbgi"),
    ("hyper_index", "hyper_index"),
    ("hypo_index", "hypo_index"),
    ("IGC", "igc"),
    ("IQR", "iqr_mg_dl"),
    ("J_index", "j_index"),
    ("M_value", "m_value"),
    ("MAD", "mad_mg_dl"),
    ("MAGE", "mage_mg_dl"),
    ("active_percent", "active_pct"),
    ("ndays", "days"),
    ("start_date", "start_time"),
    ("end_date", "end_time"),
    ("above_140", "pct_above_140"),
    ("above_180", "pct_above_180"),
    ("above_250", "pct_above_250"),
    ("below_54", "pct_below_54"),
    ("below_70", "pct_below_70"),
    ("in_range_63_140", "pct_63_140"),
    ("in_range_70_180", "pct_70_180"),
    ("PGS", "pgs"),
    ("range", "range_mg_dl"),
    ("SD", "sd_mg_dl"),
    ("Min.", "min_mg_dl"),
    ("1st Qu.", "q1_mg_dl"),
    ("Median", "median_mg_dl"),
    ("Mean", "mean_mg_dl"),
    ("3rd Qu.", "q3_mg_dl"),
    ("Max.", "max_mg_dl"),
    ("Conga", "conga_24h"),
    ("GVP", "gvp_pct"),
    ("MODD", "modd"),
    ("SD.Roc", "sd_roc_mg_dl_per_min"),
    ("CV_Measures_Mean", "cv_mean_pct"),
    ("CV_Measures_SD", "cv_sd_pct"),
    ("AUC", "auc_hourly_mg_dl"),
    ("MAG", "mag_mg_dl_per_h"),
    ("SDw", "sd_w"),
    ("SDhhmm", "sd_hhmm"),
    ("SDwsh", "sd_wsh"),
    ("SDdm", "sd_dm"),
    ("SDb", "sd_b"),
    ("SDbdm", "sd_bdm"),
)

CONSENSUS_ONLY: Final = (
    ("below_54", "pct_below_54"),
    ("below_70", "pct_below_70"),
    ("in_range_70_180", "pct_70_180"),
    ("above_180", "pct_above_180"),
    ("above_250", "pct_above_250"),
    ("SD", "sd_mg_dl"),
    ("mean", "mean_mg_dl"),
    ("CV", "cv_pct"),
    ("active_percent", "active_pct"),
    ("ndays", "days"),
    ("start_date", "start_time"),
    ("end_date", "end_time"),
    ("in_range_70_140", "pct_70_140"),
    ("GMI", "gmi_pct"),
    ("GRI", "gri"),
    ("total_extended_hypo_episodes", "hypo_extended_episodes"),
    ("total_extended_hyper_episodes", "hyper_extended_episodes"),
)

# iglu's episode_calculation: one row per id x (type, level), in this order.
EPISODE_COLUMNS: Final = (
    "id",
    "type",
    "level",
    "avg_ep_per_day",
    "avg_ep_duration",
    "avg_ep_gl",
    "total_episodes",
)
