-- The merged statistics, one row per (experiment, revision, variant, minute).
CREATE OR REPLACE VIEW variant_minutes AS
SELECT experiment, revision, variant, minute,
       uniqExactMerge(exposed_units) AS exposed_units,
       uniqExactMerge(converting_units) AS converting_units,
       uniqExactMerge(conversions) AS conversions,
       sum(valued_conversions) AS valued_conversions,
       sum(value_sum) AS value_sum,
       sum(value_sumsq) AS value_sumsq,
       uniqExactMapMerge(flags) AS flags_by_reason,
       uniqExactMerge(multi_variant_units) AS multi_variant_units
FROM variant_minute_stats
GROUP BY experiment, revision, variant, minute;
