-- The patient-days (local calendar days in each reading's zone) that a set of readings touches.
SELECT DISTINCT patient_key, CAST(timezone(tz, ts) AS DATE) AS date
FROM readings
ORDER BY patient_key, date
