-- The patient-days (local calendar days in each reading's zone) that a set of readings touches.
-- Input: readings with local_date, the reading's day in its own zone (metrics.daily.local_dates).
SELECT DISTINCT patient_key, local_date AS date
FROM readings
ORDER BY patient_key, date
