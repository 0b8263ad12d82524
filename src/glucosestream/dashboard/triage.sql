-- Clinic triage: one row per patient from the published daily metrics, over the 14 days that
-- end on the newest day in the lake (the AGP/consensus reporting window, Battelino 2019).
-- Range percentages are reading-weighted over the window. GRI (Klonoff 2023, Diabetes Technol
-- Ther 25:349): 3.0 x %<54 + 2.4 x %54-69 + 1.6 x %>250 + 0.8 x %181-250, at most 100;
-- zones A-E by 20-point steps; no GRI without readings in the window. Sufficient data: 14 days with data and >= 70 % active
-- (Battelino 2019).
WITH ref AS (
    SELECT max(date) AS as_of FROM daily
),
recent AS (
    SELECT d.*
    FROM daily AS d, ref
    WHERE d.date > ref.as_of - INTERVAL 14 DAY
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
    SELECT patient_key, max(date) AS last_date
    FROM daily
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
        *,
        CASE WHEN readings > 0 THEN least(
            100.0,
            3.0 * pct_below_54
            + 2.4 * (pct_below_70 - pct_below_54)
            + 1.6 * pct_above_250
            + 0.8 * (pct_above_180 - pct_above_250)
        ) END AS gri,
        days_with_data >= 14 AND pct_active >= 70.0 AS sufficient
    FROM joined
)
SELECT
    *,
    CASE
        WHEN gri IS NULL THEN NULL
        WHEN gri < 20 THEN 'A'
        WHEN gri < 40 THEN 'B'
        WHEN gri < 60 THEN 'C'
        WHEN gri < 80 THEN 'D'
        ELSE 'E'
    END AS gri_zone
FROM scored
ORDER BY
    gri DESC NULLS LAST, pct_below_54 DESC, pct_below_70 DESC, pct_active ASC, last_date ASC, patient_key
