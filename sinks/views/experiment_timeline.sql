-- The report over time: one row per (experiment, variant, minute) with what that minute added to the
-- numbers of experiment_report, so running sums give the report as it stood at the end of each minute
-- (the dashboard's conversion-rate chart; its last point equals the report's rate).
--
--     SELECT * FROM experiment_timeline(policy = 'exclude') WHERE experiment = 'moon_mars' ORDER BY minute
--
-- The same definitions as experiment_report (0005), from the deduplicated detail tables (FINAL):
--   units             counted units whose first exposure falls in the minute (policy as in the report)
--   converting_units  counted units whose first counted conversion falls in the minute
--   conversions / late_conversions  counted conversion events in the minute (late: flagged late by the jobs)
-- A conversion counts when it is attributed to the unit's first exposure; it is placed at
-- greatest(its ts, that exposure's ts), so a unit never converts before it is counted.
-- variant_minutes (0003) stays the cheap raw series (every first exposure, no policy, no join).

CREATE OR REPLACE VIEW experiment_timeline AS
WITH
multi_variant AS (
    SELECT DISTINCT experiment, unit_id FROM variant_switches FINAL WHERE reason = 'multiple_variants'
),
exposed AS (
    SELECT experiment, unit_id, argMin(variant, (exposure_ts, event_id)) AS variant,
           argMin(event_id, (exposure_ts, event_id)) AS first_event_id, min(exposure_ts) AS first_ts
    FROM first_exposures FINAL
    GROUP BY experiment, unit_id
),
counted AS (
    SELECT experiment, unit_id, variant, first_event_id, first_ts FROM exposed
    WHERE throwIf({policy:String} NOT IN ('exclude', 'first_seen'),
                  'experiment_timeline: policy must be \'exclude\' or \'first_seen\'') = 0
      AND ({policy:String} = 'first_seen' OR (experiment, unit_id) NOT IN (SELECT experiment, unit_id FROM multi_variant))
),
counted_conversions AS (
    SELECT u.experiment AS experiment, u.variant AS variant, u.unit_id AS unit_id,
           greatest(c.ts, u.first_ts) AS ts, c.late AS late
    FROM conversions AS c FINAL
    INNER JOIN counted AS u
        ON c.experiment = u.experiment AND c.unit_id = u.unit_id AND c.exposure_event_id = u.first_event_id
)
SELECT experiment, variant, minute,
       sum(new_units) AS units, sum(new_converting_units) AS converting_units,
       sum(new_conversions) AS conversions, sum(new_late_conversions) AS late_conversions
FROM (
    SELECT experiment, variant, toStartOfMinute(first_ts) AS minute, toUInt64(1) AS new_units,
           toUInt64(0) AS new_converting_units, toUInt64(0) AS new_conversions, toUInt64(0) AS new_late_conversions
    FROM counted
    UNION ALL
    SELECT experiment, variant, toStartOfMinute(min(ts)), toUInt64(0), toUInt64(1), toUInt64(0), toUInt64(0)
    FROM counted_conversions
    GROUP BY experiment, variant, unit_id
    UNION ALL
    SELECT experiment, variant, toStartOfMinute(ts), toUInt64(0), toUInt64(0), toUInt64(1), toUInt64(late)
    FROM counted_conversions
)
GROUP BY experiment, variant, minute;
