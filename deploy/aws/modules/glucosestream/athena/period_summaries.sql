CREATE OR REPLACE VIEW results.period_summaries AS
-- The audited period results: one row per patient and closed fixed fortnight of local days
-- (periods start on Mondays every 14 days from 2024-01-01; the open fortnight is never stored).
-- The summary a clinic or dashboard reads: data sufficiency, the glucose statistics, the bands
-- by readings, GRI and its zone, and the episode counts; every other column (time-weighted
-- bands, episode durations) is in the table itself. is_latest_period marks each patient's
-- newest closed period. Written in Trino SQL (Athena engine 3), tested by
-- tests/test_athena_views.py.
SELECT
    p.patient_key,
    p.period_start,
    p.period_end,
    p.period_start = max(p.period_start) OVER (PARTITION BY p.patient_key) AS is_latest_period,
    p.readings,
    p.days,
    p.active_pct,
    p.grid_coverage_pct,
    p.longest_gap_min,
    p.sufficient_14d,
    p.first_reading_local,
    p.last_reading_local,
    p.mean_mg_dl,
    p.sd_mg_dl,
    p.cv_pct,
    p.gmi_pct,
    p.pct_below_54,
    p.pct_54_69,
    p.pct_70_180,
    p.pct_181_250,
    p.pct_above_250,
    p.pct_below_70,
    p.pct_above_180,
    p.pct_70_140,
    p.gri,
    p.gri_hypo,
    p.gri_hyper,
    p.gri_zone,
    p.hypo_lv1_episodes,
    p.hypo_lv1_per_day,
    p.hypo_lv2_episodes,
    p.hypo_lv2_per_day,
    p.hypo_extended_episodes,
    p.hyper_lv1_episodes,
    p.hyper_lv1_per_day,
    p.hyper_lv2_episodes,
    p.hyper_lv2_per_day,
    p.hyper_extended_episodes,
    p.dt0_min,
    p.run_id,
    p.computed_at
FROM results.period_metrics AS p
