CREATE OR REPLACE VIEW results.triage_list AS
-- The clinic triage list: one row per patient, the same rows and numbers as the dashboard's
-- triage (src/glucosestream/dashboard/triage.sql), over the 14 local days that end on the newest
-- day of any patient (as_of; the AGP/consensus reporting window, Battelino 2019). Range
-- percentages are reading-weighted over the window. GRI (Klonoff 2023, Diabetes Technol Ther
-- 25:349): 3.0 x %<54 + 2.4 x %54-69 + 1.6 x %>250 + 0.8 x %181-250, at most 100; zones A-E by
-- 20-point steps; no GRI without readings in the window. Sufficient data: 14 days with data and
-- at least 70 % active. triage_rank is the dashboard's order (highest GRI first). The latest_*
-- columns are the patient's newest audited fortnight, if any. Written in Trino SQL (Athena
-- engine 3), tested by tests/test_athena_views.py.
WITH ref AS (
    SELECT
        max(d."date") AS as_of,
        CAST(date_add('day', -13, max(d."date")) AS DATE) AS window_start
    FROM results.daily_metrics AS d
),
recent AS (
    SELECT
        d.patient_key,
        d.readings,
        d.mean_mg_dl,
        d.gmi_pct,
        d.pct_below_54,
        d.pct_below_70,
        d.pct_70_180,
        d.pct_above_180,
        d.pct_above_250,
        d.pct_active
    FROM results.daily_metrics AS d
    CROSS JOIN ref
    WHERE d."date" >= ref.window_start
),
window_stats AS (
    SELECT
        patient_key,
        count(*) AS days_with_data,
        CAST(sum(readings) AS BIGINT) AS readings,
        sum(mean_mg_dl * readings) / sum(readings) AS mean_mg_dl,
        sum(pct_below_54 * readings) / sum(readings) AS pct_below_54,
        sum(pct_below_70 * readings) / sum(readings) AS pct_below_70,
        sum(pct_70_180 * readings) / sum(readings) AS pct_70_180,
        sum(pct_above_180 * readings) / sum(readings) AS pct_above_180,
        sum(pct_above_250 * readings) / sum(readings) AS pct_above_250,
        sum(gmi_pct * readings) / sum(readings) AS gmi_pct,
        sum(pct_active) / 14.0 AS pct_active
    FROM recent
    GROUP BY patient_key
),
latest AS (
    SELECT patient_key, max("date") AS last_date
    FROM results.daily_metrics
    GROUP BY patient_key
),
joined AS (
    SELECT
        l.patient_key,
        l.last_date,
        coalesce(w.days_with_data, 0) AS days_with_data,
        coalesce(w.readings, 0) AS readings,
        w.mean_mg_dl,
        w.gmi_pct,
        coalesce(w.pct_below_54, 0.0) AS pct_below_54,
        coalesce(w.pct_below_70, 0.0) AS pct_below_70,
        w.pct_70_180,
        coalesce(w.pct_above_180, 0.0) AS pct_above_180,
        coalesce(w.pct_above_250, 0.0) AS pct_above_250,
        coalesce(w.pct_active, 0.0) AS pct_active
    FROM latest AS l
    LEFT JOIN window_stats AS w ON w.patient_key = l.patient_key
),
scored AS (
    SELECT
        patient_key,
        last_date,
        days_with_data,
        readings,
        mean_mg_dl,
        gmi_pct,
        pct_below_54,
        pct_below_70,
        pct_70_180,
        pct_above_180,
        pct_above_250,
        pct_active,
        CASE WHEN readings > 0 THEN least(
            100.0,
            3.0 * pct_below_54
            + 2.4 * (pct_below_70 - pct_below_54)
            + 1.6 * pct_above_250
            + 0.8 * (pct_above_180 - pct_above_250)
        ) END AS gri,
        days_with_data >= 14 AND pct_active >= 70.0 AS sufficient
    FROM joined
),
newest_period AS (
    SELECT
        patient_key,
        period_start,
        period_end,
        gri,
        gri_zone,
        sufficient_14d,
        row_number() OVER (PARTITION BY patient_key ORDER BY period_start DESC) AS recency
    FROM results.period_metrics
)
SELECT
    row_number() OVER (
        ORDER BY
            s.gri DESC NULLS LAST,
            s.pct_below_54 DESC,
            s.pct_below_70 DESC,
            s.pct_active ASC,
            s.last_date ASC,
            s.patient_key ASC
    ) AS triage_rank,
    s.patient_key,
    s.last_date,
    s.days_with_data,
    s.readings,
    s.mean_mg_dl,
    s.gmi_pct,
    s.pct_below_54,
    s.pct_below_70,
    s.pct_70_180,
    s.pct_above_180,
    s.pct_above_250,
    s.pct_active,
    s.gri,
    s.sufficient,
    CASE
        WHEN s.gri IS NULL THEN NULL
        WHEN s.gri < 20 THEN 'A'
        WHEN s.gri < 40 THEN 'B'
        WHEN s.gri < 60 THEN 'C'
        WHEN s.gri < 80 THEN 'D'
        ELSE 'E'
    END AS gri_zone,
    ref.as_of,
    ref.window_start,
    n.period_start AS latest_period_start,
    n.period_end AS latest_period_end,
    n.gri AS latest_period_gri,
    n.gri_zone AS latest_period_gri_zone,
    n.sufficient_14d AS latest_period_sufficient
FROM scored AS s
CROSS JOIN ref
LEFT JOIN newest_period AS n ON n.patient_key = s.patient_key AND n.recency = 1
ORDER BY triage_rank
