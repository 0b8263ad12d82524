-- The incoming readings whose (patient_key, device_id, ts) curated does not hold yet, in key
-- order and, within a key, by batch: the first row of each key is its first arrival, which
-- pipeline/first_arrival.py keeps. (A row_number() window per key found the same rows, but
-- DuckDB ran it as a hash group-by carrying every column: two thirds of the merge's time.)
-- Inputs: incoming (canonical schema, from raw batches), curated (canonical schema).
SELECT
    i.patient_key,
    i.device_id,
    i.source,
    i.ts,
    i.glucose_mg_dl,
    i.original_value,
    i.original_unit,
    i.flags,
    i.tz,
    i.batch_id,
    i.ingested_at
FROM incoming AS i
WHERE
    NOT EXISTS (
        SELECT 1
        FROM curated AS c
        WHERE c.patient_key = i.patient_key AND c.device_id = i.device_id AND c.ts = i.ts
    )
ORDER BY i.patient_key, i.device_id, i.ts, i.batch_id
