CREATE OR REPLACE VIEW results.daily_summaries AS
-- The published daily metrics: one row per patient and local calendar day (the day in the
-- patient's own zone, tz), as the pipeline computed them. The two middle bands, 54-69 and
-- 181-250 mg/dL, are derived from the cumulative ones the table stores; iso_weekday is 1 for
-- Monday to 7 for Sunday. The insulin and carbohydrate columns (bolus_u ... automated_pct) are
-- the daily totals of the patient's events, NULL where nothing was recorded (a day of events
-- and no readings has readings 0 and NULL glucose figures). (Not named daily_metrics: that is
-- the Iceberg table's name in the same database.) Written in Trino SQL (Athena engine 3),
-- tested by tests/test_athena_views.py.
SELECT
    d.patient_key,
    d."date",
    day_of_week(d."date") AS iso_weekday,
    d.tz,
    d.readings,
    d.mean_mg_dl,
    d.sd_mg_dl,
    d.cv_pct,
    d.gmi_pct,
    d.pct_below_54,
    d.pct_below_70 - d.pct_below_54 AS pct_54_69,
    d.pct_below_70,
    d.pct_70_180,
    d.pct_above_180 - d.pct_above_250 AS pct_181_250,
    d.pct_above_180,
    d.pct_above_250,
    d.pct_active,
    d.bolus_u,
    d.basal_u,
    d.insulin_total_u,
    d.carbs_g,
    d.boluses,
    d.automated_pct,
    d.run_id,
    d.computed_at
FROM results.daily_metrics AS d
