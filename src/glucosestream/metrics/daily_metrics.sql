-- Daily consensus metrics per patient and local calendar day (the patient's zone, tz).
-- Inputs: readings (canonical schema, de-duplicated, plus local_date: the reading's day in its
-- own zone), days (patient_key, date) to compute.
-- Params: $gmi_intercept, $gmi_slope, the band thresholds $tbr_level2, $tbr_level1, $tar_level1,
-- $tar_level2 (metrics/thresholds.py: 54, 70, 180, 250 mg/dL), $run_id, $computed_at.
-- Sampling interval of a device on a day: its most common gap between consecutive readings,
-- in whole minutes (1-60); % active = readings x interval / minutes in that local day (23, 24
-- or 25 hours), capped at 100. Bands count readings: < tbr_level2,
-- < tbr_level1, tbr_level1-tar_level1 inclusive, > tar_level1, > tar_level2.
-- Sums are taken over DECIMAL(38, 18), which adds exactly: floating-point sums depend on the
-- order rows meet in parallel aggregation, and a rerun must give bit-identical results. The
-- sample SD is two-pass (mean first, then squared deviations) for accuracy.
-- The insulin and carbohydrate columns are NULL here: they come from the day's events
-- (metrics/event_totals.py), which the pipeline joins in.
WITH local_readings AS (
    SELECT
        r.patient_key,
        r.device_id,
        r.ts,
        r.glucose_mg_dl,
        r.tz,
        r.local_date AS date
    FROM readings AS r
),
picked AS (
    SELECT l.*
    FROM local_readings AS l
    INNER JOIN days AS d ON l.patient_key = d.patient_key AND l.date = d.date
),
gaps AS (
    SELECT
        patient_key,
        device_id,
        date,
        round(
            (epoch(ts) - epoch(lag(ts) OVER (PARTITION BY patient_key, device_id, date ORDER BY ts)))
            / 60.0
        ) AS gap_min
    FROM picked
),
gap_counts AS (
    SELECT patient_key, device_id, date, gap_min, count(*) AS n
    FROM gaps
    WHERE gap_min BETWEEN 1 AND 60
    GROUP BY patient_key, device_id, date, gap_min
),
intervals AS (
    SELECT
        patient_key,
        device_id,
        date,
        arg_max(gap_min, n * 1000 - gap_min) AS interval_min
    FROM gap_counts
    GROUP BY patient_key, device_id, date
),
worn AS (
    SELECT
        p.patient_key,
        p.date,
        sum(coalesce(i.interval_min, 5)) AS worn_min
    FROM picked AS p
    LEFT JOIN intervals AS i
        ON p.patient_key = i.patient_key AND p.device_id = i.device_id AND p.date = i.date
    GROUP BY p.patient_key, p.date
),
sums AS (
    SELECT
        patient_key,
        date,
        CAST(sum(CAST(glucose_mg_dl AS DECIMAL(38, 18))) AS DOUBLE) / count(*) AS mean_mg_dl
    FROM picked
    GROUP BY patient_key, date
),
spread AS (
    SELECT
        p.patient_key,
        p.date,
        CASE
            WHEN count(*) > 1
                THEN sqrt(
                    CAST(
                        sum(CAST((p.glucose_mg_dl - s.mean_mg_dl) * (p.glucose_mg_dl - s.mean_mg_dl)
                            AS DECIMAL(38, 18)))
                        AS DOUBLE
                    ) / (count(*) - 1)
                )
        END AS sd_mg_dl
    FROM picked AS p
    INNER JOIN sums AS s ON p.patient_key = s.patient_key AND p.date = s.date
    GROUP BY p.patient_key, p.date
),
daily AS (
    SELECT
        patient_key,
        date,
        min(tz) AS tz,
        count(*) AS readings,
        100.0 * count(*) FILTER (WHERE glucose_mg_dl < $tbr_level2) / count(*) AS pct_below_54,
        100.0 * count(*) FILTER (WHERE glucose_mg_dl < $tbr_level1) / count(*) AS pct_below_70,
        100.0 * count(*) FILTER (
            WHERE glucose_mg_dl >= $tbr_level1 AND glucose_mg_dl <= $tar_level1
        ) / count(*) AS pct_70_180,
        100.0 * count(*) FILTER (WHERE glucose_mg_dl > $tar_level1) / count(*) AS pct_above_180,
        100.0 * count(*) FILTER (WHERE glucose_mg_dl > $tar_level2) / count(*) AS pct_above_250
    FROM picked
    GROUP BY patient_key, date
)
SELECT
    d.patient_key,
    d.date,
    d.tz,
    CAST(d.readings AS INTEGER) AS readings,
    s.mean_mg_dl,
    v.sd_mg_dl,
    100.0 * v.sd_mg_dl / s.mean_mg_dl AS cv_pct,
    $gmi_intercept + $gmi_slope * s.mean_mg_dl AS gmi_pct,
    d.pct_below_54,
    d.pct_below_70,
    d.pct_70_180,
    d.pct_above_180,
    d.pct_above_250,
    least(
        100.0,
        100.0 * w.worn_min
        / ((epoch(timezone(d.tz, CAST(d.date + INTERVAL 1 DAY AS TIMESTAMP)))
            - epoch(timezone(d.tz, CAST(d.date AS TIMESTAMP)))) / 60.0)
    ) AS pct_active,
    CAST($run_id AS VARCHAR) AS run_id,
    CAST($computed_at AS TIMESTAMPTZ) AS computed_at,
    CAST(NULL AS DOUBLE) AS bolus_u,
    CAST(NULL AS DOUBLE) AS basal_u,
    CAST(NULL AS DOUBLE) AS insulin_total_u,
    CAST(NULL AS DOUBLE) AS carbs_g,
    CAST(NULL AS INTEGER) AS boluses,
    CAST(NULL AS DOUBLE) AS automated_pct
FROM daily AS d
INNER JOIN worn AS w ON d.patient_key = w.patient_key AND d.date = w.date
INNER JOIN sums AS s ON d.patient_key = s.patient_key AND d.date = s.date
INNER JOIN spread AS v ON d.patient_key = v.patient_key AND d.date = v.date
ORDER BY d.patient_key, d.date
