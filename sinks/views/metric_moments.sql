-- Every metric's sufficient statistics per variant, from the aggregates (migration 0010): what a notebook
-- needs to compute any estimate, without reading a unit row.
--
--     SELECT * FROM metric_moments WHERE experiment = 'moon_mars' AND metric = 'revenue_per_visitor'
--
-- units      exposed units of the variant (the variant of each unit's earliest first exposure), zeros included
-- nonzero    units whose value x is not 0 (a proportion: the converted units)
-- sum_x ...  sums over the units of x (the numerator, capped by a fixed cap), x^2, y (a ratio's denominator;
--            for the built-in metric _conversions: late conversions), y^2 and x*y
-- version    the metric definition the values follow (MetricSpec.version); the latest revision of the
--            experiment names the one the report shows
-- Multi-variant units are counted in their first variant (the report's first_seen policy); percentile caps
-- are not applied here (the report computes them from metric_units).

CREATE OR REPLACE VIEW metric_moments AS
SELECT m.experiment AS experiment, m.metric AS metric, m.version AS version, m.variant AS variant,
       ifNull(u.units, 0) AS units, m.nonzero AS nonzero, m.sum_x AS sum_x, m.sum_x2 AS sum_x2,
       m.sum_y AS sum_y, m.sum_y2 AS sum_y2, m.sum_xy AS sum_xy
FROM (
    SELECT experiment, metric, version, variant, sum(nonzero) AS nonzero, sum(sum_x) AS sum_x,
           sum(sum_x2) AS sum_x2, sum(sum_y) AS sum_y, sum(sum_y2) AS sum_y2, sum(sum_xy) AS sum_xy
    FROM metric_stats
    GROUP BY experiment, metric, version, variant
) AS m
LEFT JOIN (
    SELECT experiment, variant, sum(units) AS units FROM exposure_stats GROUP BY experiment, variant
) AS u ON m.experiment = u.experiment AND m.variant = u.variant;
