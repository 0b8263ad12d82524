-- Sensor sessions (wear periods) of each (patient_key, device_id): maximal runs of readings in
-- which no two consecutive readings are $break_min minutes or more apart (pipeline/sessions.py).
-- Inputs: stored (sessions already published, kept as summaries: a run extends them without
-- reading their readings again) and readings (each one a piece of one reading).
-- A piece joins the session before it when it starts less than $break_min after every piece
-- before it has ended; a session's longest gap and its count of gaps over 15 minutes
-- combine the pieces' own with the gaps between pieces (a gap over 15 minutes is a signal loss:
-- three missed 5-minute readings, the consensus episode duration).
WITH pieces AS (
    SELECT
        patient_key,
        device_id,
        session_start AS first_ts,
        session_end AS last_ts,
        readings,
        longest_gap_min,
        gaps_over_15_min
    FROM stored
    UNION ALL
    SELECT
        patient_key,
        device_id,
        ts AS first_ts,
        ts AS last_ts,
        1 AS readings,
        0.0 AS longest_gap_min,
        0 AS gaps_over_15_min
    FROM readings
),
ordered AS (
    SELECT
        *,
        max(last_ts) OVER (
            PARTITION BY patient_key, device_id ORDER BY first_ts, last_ts
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        ) AS previous_end
    FROM pieces
),
marked AS (
    SELECT
        *,
        CASE
            WHEN previous_end IS NULL THEN 1
            WHEN date_diff('second', previous_end, first_ts) >= $break_min * 60 THEN 1
            ELSE 0
        END AS starts_session,
        CASE
            WHEN previous_end IS NULL OR first_ts <= previous_end THEN 0.0
            ELSE date_diff('second', previous_end, first_ts) / 60.0
        END AS gap_before_min
    FROM ordered
),
numbered AS (
    SELECT
        *,
        sum(starts_session) OVER (
            PARTITION BY patient_key, device_id ORDER BY first_ts, last_ts
            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS session_no
    FROM marked
)
SELECT
    patient_key,
    device_id,
    min(first_ts) AS session_start,
    max(last_ts) AS session_end,
    sum(readings) AS readings,
    greatest(
        max(longest_gap_min),
        coalesce(max(CASE WHEN starts_session = 0 THEN gap_before_min END), 0.0)
    ) AS longest_gap_min,
    sum(gaps_over_15_min)
    + sum(CASE WHEN starts_session = 0 AND gap_before_min > 15 THEN 1 ELSE 0 END)
        AS gaps_over_15_min
FROM numbered
GROUP BY patient_key, device_id, session_no
ORDER BY patient_key, device_id, session_start
