-- Validate and normalise raw rows into canonical readings; one output row per input row.
-- Inputs: incoming (pos, line, source, patient_key, device_id, time, instant, glucose, unit, tz, tz_ok,
-- flags, problem, direction, rate): pos is the row's place in time order as the parser gave it, flags
-- and problem come from the parser, direction and rate are the uploader's trend as text (kept when
-- the direction is one of $directions and the rate a finite number within $max_rate_mg_dl_min either
-- way, else NULL: a bad trend never quarantines a row). Params: $default_unit, $min_mg_dl, $max_mg_dl, $mg_per_mmol, $time_formats
-- (strptime formats of local times that are not ISO 8601), $scan_flag (ReadingFlag.SCAN),
-- $earliest and $latest (the first and last plausible instants, both allowed). carried (patient_key, device_id, tz, day,
-- reached): for a file read in chunks, per device, zone and local day, the latest repeated local
-- time an earlier chunk reached (empty otherwise); it counts as an earlier row for the second pass.
-- repeated_local_time is the local time of a row in a repeated (fall-back) hour, for the next chunk.
-- reason is NULL for a good row; duplicate marks a good row that adds nothing: a later row with
-- the key (patient_key, device_id, ts) of an earlier one (a historic reading wins over a scan),
-- or a scan covered by a historic reading.
--
-- Local times (no offset) are read in the row's zone. Where the clock fell back, a local time
-- happens twice: a row takes the earlier instant, unless an earlier row of the same device in
-- time order already reached that local time or later in the repeated hour; then it is the second
-- pass and takes the later instant. A local time in a spring-forward gap never happened on that
-- clock: the row is quarantined. Zones are looked up once per zone and day, not per row.
WITH typed AS (
    SELECT
        pos,
        line,
        source,
        patient_key,
        device_id,
        flags,
        problem,
        time AS raw_time,
        instant,
        glucose AS raw_glucose,
        tz,
        tz_ok,
        CASE WHEN list_contains($directions, direction) THEN direction END AS direction,
        CASE
            WHEN abs(TRY_CAST(trim(rate) AS DOUBLE)) <= $max_rate_mg_dl_min
                THEN TRY_CAST(trim(rate) AS DOUBLE)
        END AS rate_mg_dl_min,
        CASE lower(replace(coalesce(nullif(trim(unit), ''), $default_unit), ' ', ''))
            WHEN 'mg/dl' THEN 'mg/dL'
            WHEN 'mmol/l' THEN 'mmol/L'
        END AS original_unit,
        TRY_CAST(trim(glucose) AS DOUBLE) AS original_value,
        instant IS NOT NULL OR regexp_matches(
            trim(time), '[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*([zZ]|[+-]\d{2}(:?\d{2})?)$'
        ) AS has_offset
    FROM incoming
),
parsed AS (
    SELECT
        *,
        CASE
            WHEN instant IS NOT NULL THEN instant
            WHEN has_offset THEN TRY_CAST(trim(raw_time) AS TIMESTAMPTZ)
        END AS given,
        CASE
            WHEN NOT has_offset AND tz_ok THEN coalesce(
                TRY_CAST(trim(raw_time) AS TIMESTAMP), try_strptime(trim(raw_time), $time_formats)
            )
        END AS local_given
    FROM typed
),
finite AS (
    -- An infinite instant ('inf', 'infinity', an Arrow timestamp at the int64 limit) is no
    -- time: NULL, so that row alone is quarantined as unparsable. A local time more than two
    -- days outside the plausible range is outside it in any zone: it skips the zone rules (whose
    -- arithmetic overflows near year 294247) and stands as its UTC reading (far_time).
    SELECT
        * EXCLUDE (given, local_given),
        CASE WHEN isfinite(given) THEN given END AS ts_given,
        CASE WHEN local_given BETWEEN timezone('UTC', $earliest) - INTERVAL 2 DAY
            AND timezone('UTC', $latest) + INTERVAL 2 DAY THEN local_given END AS local_time,
        CASE WHEN isfinite(local_given) AND NOT local_given BETWEEN timezone('UTC', $earliest)
            - INTERVAL 2 DAY AND timezone('UTC', $latest) + INTERVAL 2 DAY
            THEN timezone('UTC', local_given) END AS far_time
    FROM parsed
),
zone_days AS (
    -- Per zone and local day, the UTC offsets in force 14 hours (the widest offset) before the
    -- day starts and after it ends. Equal: no change near that day, every local time of it has one
    -- instant. Different: a daylight-saving day, whose rows are each tried at both offsets.
    SELECT
        tz,
        day,
        timezone(tz, timezone('UTC', day - INTERVAL 14 HOUR))
        - (day - INTERVAL 14 HOUR) AS offset_before,
        timezone(tz, timezone('UTC', day + INTERVAL 38 HOUR))
        - (day + INTERVAL 38 HOUR) AS offset_after
    FROM (
        SELECT DISTINCT tz, CAST(CAST(local_time AS DATE) AS TIMESTAMP) AS day
        FROM finite
        WHERE local_time IS NOT NULL
    )
),
candidates AS (
    SELECT
        p.*,
        timezone('UTC', p.local_time - z.offset_before) AS at_before,
        timezone('UTC', p.local_time - z.offset_after) AS at_after,
        CASE
            WHEN z.offset_before = z.offset_after THEN TRUE
            WHEN p.local_time IS NOT NULL
                THEN timezone(p.tz, timezone('UTC', p.local_time - z.offset_before)) = p.local_time
        END AS before_ok,
        CASE
            WHEN z.offset_before = z.offset_after THEN TRUE
            WHEN p.local_time IS NOT NULL
                THEN timezone(p.tz, timezone('UTC', p.local_time - z.offset_after)) = p.local_time
        END AS after_ok
    FROM finite AS p
    LEFT JOIN zone_days AS z
        ON p.tz = z.tz AND CAST(CAST(p.local_time AS DATE) AS TIMESTAMP) = z.day
),
classified AS (
    SELECT
        *,
        coalesce(before_ok AND after_ok AND at_before <> at_after, FALSE) AS repeated,
        local_time IS NOT NULL AND NOT coalesce(before_ok OR after_ok, FALSE) AS in_gap
    FROM candidates
),
second_pass AS (
    SELECT
        r.pos,
        coalesce(r.reached >= r.local_time, FALSE)
        OR coalesce(k.reached >= r.local_time, FALSE) AS is_second
    FROM (
        SELECT
            pos,
            patient_key,
            device_id,
            tz,
            local_time,
            max(local_time) OVER (
                PARTITION BY patient_key, device_id, tz, CAST(local_time AS DATE)
                ORDER BY pos
                ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
            ) AS reached
        FROM classified
        WHERE repeated
    ) AS r
    LEFT JOIN carried AS k
        ON
            r.patient_key = k.patient_key
            AND r.device_id = k.device_id
            AND r.tz = k.tz
            AND CAST(r.local_time AS DATE) = k.day
),
timed AS (
    SELECT
        c.*,
        CASE
            WHEN c.has_offset THEN c.ts_given
            WHEN c.far_time IS NOT NULL THEN c.far_time
            WHEN c.repeated AND s.is_second THEN greatest(c.at_before, c.at_after)
            WHEN c.repeated THEN least(c.at_before, c.at_after)
            WHEN c.before_ok THEN c.at_before
            WHEN c.after_ok THEN c.at_after
        END AS ts,
        CASE c.original_unit
            WHEN 'mmol/L' THEN c.original_value * $mg_per_mmol
            ELSE c.original_value
        END AS glucose_mg_dl
    FROM classified AS c
    LEFT JOIN second_pass AS s ON c.pos = s.pos
),
checked AS MATERIALIZED (
    SELECT
        *,
        CASE
            WHEN problem IS NOT NULL THEN problem
            WHEN patient_key IS NULL THEN 'missing patient id'
            WHEN instant IS NULL AND (raw_time IS NULL OR trim(raw_time) = '') THEN 'missing time'
            WHEN NOT tz_ok THEN 'unknown time zone'
            WHEN in_gap THEN 'local time skipped by a daylight-saving change'
            WHEN ts IS NULL THEN 'unparsable time'
            WHEN ts < $earliest OR ts > $latest THEN 'time outside the plausible range'
            WHEN raw_glucose IS NULL OR trim(raw_glucose) = '' THEN 'missing glucose'
            WHEN original_value IS NULL OR isnan(original_value) THEN 'glucose is not a number'
            WHEN original_unit IS NULL THEN 'unknown unit (expected mg/dL or mmol/L)'
            WHEN glucose_mg_dl < $min_mg_dl OR glucose_mg_dl > $max_mg_dl
                THEN 'glucose outside the plausible range'
        END AS reason,
        (flags & $scan_flag) <> 0 AS is_scan
    FROM timed
),
-- Scans: a scan is covered when a good historic reading of the same device lies less than the
-- device's sampling interval (its most common gap between historic readings) before or after it.
series AS (
    -- the good rows of the devices that have scans
    SELECT c.pos, c.patient_key, c.device_id, c.ts, c.is_scan
    FROM checked AS c
    SEMI JOIN (
        SELECT DISTINCT patient_key, device_id FROM checked WHERE is_scan AND reason IS NULL
    ) AS s ON c.patient_key = s.patient_key AND c.device_id = s.device_id
    WHERE c.reason IS NULL
),
neighbours AS (
    SELECT
        pos,
        patient_key,
        device_id,
        ts,
        is_scan,
        max(CASE WHEN NOT is_scan THEN ts END) OVER (
            PARTITION BY patient_key, device_id ORDER BY ts
            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS historic_before,
        min(CASE WHEN NOT is_scan THEN ts END) OVER (
            PARTITION BY patient_key, device_id ORDER BY ts
            ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING
        ) AS historic_after,
        epoch(ts - lag(ts) OVER (PARTITION BY patient_key, device_id, is_scan ORDER BY ts))
            AS gap_s
    FROM series
),
gap_counts AS (
    SELECT patient_key, device_id, gap_s, count(*) AS n
    FROM neighbours
    WHERE NOT is_scan AND gap_s > 0
    GROUP BY patient_key, device_id, gap_s
),
intervals AS (
    -- the most common gap; the shorter one on a tie
    SELECT patient_key, device_id, arg_max(gap_s, n * 1e9 - gap_s) AS interval_s
    FROM gap_counts
    GROUP BY patient_key, device_id
),
covered AS (
    SELECT n.pos
    FROM neighbours AS n
    JOIN intervals AS i ON n.patient_key = i.patient_key AND n.device_id = i.device_id
    WHERE
        n.is_scan
        AND (
            epoch(n.ts - n.historic_before) < i.interval_s
            OR epoch(n.historic_after - n.ts) < i.interval_s
        )
)
SELECT
    c.line,
    c.reason,
    c.reason IS NULL
    AND (
        row_number() OVER (
            PARTITION BY c.patient_key, c.device_id, c.ts, c.reason IS NULL
            ORDER BY c.is_scan, c.line
        ) > 1
        OR v.pos IS NOT NULL
    ) AS duplicate,
    c.source,
    c.patient_key,
    c.device_id,
    c.ts,
    c.glucose_mg_dl,
    c.original_value,
    c.original_unit,
    c.flags,
    c.tz,
    CASE WHEN c.reason IS NOT NULL THEN coalesce(c.raw_time, CAST(c.instant AS VARCHAR)) END
        AS raw_time,
    c.raw_glucose,
    CASE WHEN c.repeated THEN c.local_time END AS repeated_local_time,
    c.direction,
    c.rate_mg_dl_min
FROM checked AS c
LEFT JOIN covered AS v ON c.pos = v.pos
ORDER BY c.line
