-- The merge before issue 15 (pipeline/merge.sql at ae1de03), kept as the reference that
-- pipeline.first_arrival.new_readings must equal: the first arrival of each key by a window.
-- Issue 17 added the uploader's direction and rate to the reading: selected here as well.
WITH ranked AS (
    SELECT
        i.*,
        row_number() OVER (
            PARTITION BY i.patient_key, i.device_id, i.ts ORDER BY i.batch_id
        ) AS arrival
    FROM incoming AS i
)
SELECT
    r.patient_key,
    r.device_id,
    r.source,
    r.ts,
    r.glucose_mg_dl,
    r.original_value,
    r.original_unit,
    r.flags,
    r.tz,
    r.batch_id,
    r.ingested_at,
    r.direction,
    r.rate_mg_dl_min
FROM ranked AS r
WHERE
    r.arrival = 1
    AND NOT EXISTS (
        SELECT 1
        FROM curated AS c
        WHERE c.patient_key = r.patient_key AND c.device_id = r.device_id AND c.ts = r.ts
    )
ORDER BY r.patient_key, r.device_id, r.ts
