-- Per (experiment, variant, minute of the units' first exposure): exposed units, their exposures, and
-- their conversions (those attributed to each unit's earliest first exposure), from the sink's
-- aggregates (migrations 0010, 0011): exact under every replay, a few rows per minute whatever the units.
-- Raw: the multi-variant policy is not applied (units count in the variant of their first exposure);
-- multi_variant_units says how many of them logged another variant later.
CREATE OR REPLACE VIEW variant_minutes AS
SELECT experiment, variant, minute,
       sum(u) AS exposed_units,
       sum(e) AS exposures,
       sum(c) AS converting_units,
       toInt64(round(sum(n))) AS conversions,
       toInt64(round(sum(l))) AS late_conversions,
       sum(m) AS multi_variant_units
FROM (
    SELECT experiment, variant, minute, units AS u, exposures AS e, 0 AS c, 0. AS n, 0. AS l, 0 AS m
    FROM exposure_stats
    UNION ALL
    SELECT experiment, variant, minute, 0, 0, nonzero, sum_x, sum_y, 0
    FROM metric_stats WHERE metric = '_conversions'
    UNION ALL
    SELECT experiment, variant, minute, 0, 0, 0, 0., 0., units
    FROM multi_exposure_stats
)
GROUP BY experiment, variant, minute
HAVING exposed_units != 0 OR exposures != 0 OR converting_units != 0 OR multi_variant_units != 0;
