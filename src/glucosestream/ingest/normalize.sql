-- Validate and normalise raw rows into canonical readings; one output row per input row.
-- Inputs: incoming (line, patient_key, device_id, time, glucose, unit, tz, tz_ok), all strings
-- but line and tz_ok. Params: $default_tz, $default_unit, $min_mg_dl, $max_mg_dl, $mg_per_mmol.
-- reason is NULL for a good row; duplicate marks a later row with the same key as an earlier one.
WITH typed AS (
    SELECT
        line,
        patient_key,
        device_id,
        time AS raw_time,
        glucose AS raw_glucose,
        coalesce(nullif(trim(tz), ''), $default_tz) AS tz,
        tz_ok,
        CASE lower(replace(coalesce(nullif(trim(unit), ''), $default_unit), ' ', ''))
            WHEN 'mg/dl' THEN 'mg/dL'
            WHEN 'mmol/l' THEN 'mmol/L'
        END AS original_unit,
        TRY_CAST(trim(glucose) AS DOUBLE) AS original_value,
        regexp_matches(
            trim(time), '[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*([zZ]|[+-]\d{2}(:?\d{2})?)$'
        ) AS has_offset
    FROM incoming
),
timed AS (
    SELECT
        *,
        CASE
            WHEN has_offset THEN TRY_CAST(trim(raw_time) AS TIMESTAMPTZ)
            WHEN tz_ok THEN timezone(tz, TRY_CAST(trim(raw_time) AS TIMESTAMP))
        END AS ts,
        CASE original_unit
            WHEN 'mmol/L' THEN original_value * $mg_per_mmol
            ELSE original_value
        END AS glucose_mg_dl
    FROM typed
),
checked AS (
    SELECT
        *,
        CASE
            WHEN patient_key IS NULL THEN 'missing patient id'
            WHEN raw_time IS NULL OR trim(raw_time) = '' THEN 'missing time'
            WHEN NOT tz_ok AND NOT has_offset THEN 'unknown time zone'
            WHEN ts IS NULL THEN 'unparsable time'
            WHEN raw_glucose IS NULL OR trim(raw_glucose) = '' THEN 'missing glucose'
            WHEN original_value IS NULL OR isnan(original_value) THEN 'glucose is not a number'
            WHEN original_unit IS NULL THEN 'unknown unit (expected mg/dL or mmol/L)'
            WHEN glucose_mg_dl < $min_mg_dl OR glucose_mg_dl > $max_mg_dl
                THEN 'glucose outside the plausible range'
        END AS reason
    FROM timed
)
SELECT
    line,
    reason,
    reason IS NULL
    AND row_number() OVER (
        PARTITION BY patient_key, device_id, ts, reason IS NULL ORDER BY line
    ) > 1 AS duplicate,
    patient_key,
    device_id,
    ts,
    glucose_mg_dl,
    original_value,
    original_unit,
    tz,
    raw_time,
    raw_glucose
FROM checked
ORDER BY line
