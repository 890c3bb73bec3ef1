-- Sufficient statistics per (experiment, revision, variant, minute), kept up to date by materialized
-- views on the detail tables: what a dashboard's time series and a first_seen report need without
-- scanning the detail.
--
-- Counts are uniqExact states of the natural keys (units, conversion event ids, flagged event ids),
-- so a duplicate row can never inflate them, whatever its age. The sums (value, value squared) are
-- protected by the insert deduplication tokens: a replayed block is dropped by the target table too
-- (deduplicate_blocks_in_dependent_materialized_views=1, set on every sink insert).
-- The multi-variant policy is not applied here: these are raw statistics (units in their first variant).

CREATE TABLE IF NOT EXISTS variant_minute_stats (
    experiment LowCardinality(String),
    revision Int32,
    variant LowCardinality(String),
    minute DateTime('UTC'),
    exposed_units AggregateFunction(uniqExact, String),
    converting_units AggregateFunction(uniqExact, String),
    conversions AggregateFunction(uniqExact, UUID),
    valued_conversions SimpleAggregateFunction(sum, UInt64),
    value_sum SimpleAggregateFunction(sum, Float64),
    value_sumsq SimpleAggregateFunction(sum, Float64),
    flags AggregateFunction(uniqExactMap, Map(String, String)) COMMENT 'reason -> flagged exposure event ids',
    multi_variant_units AggregateFunction(uniqExact, String) COMMENT 'units that logged another variant later'
) ENGINE = AggregatingMergeTree
ORDER BY (experiment, revision, variant, minute)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS first_exposures_to_minute_stats TO variant_minute_stats AS
SELECT experiment, revision, variant, toStartOfMinute(exposure_ts) AS minute,
       uniqExactState(unit_id) AS exposed_units
FROM first_exposures
GROUP BY experiment, revision, variant, minute;

CREATE MATERIALIZED VIEW IF NOT EXISTS conversions_to_minute_stats TO variant_minute_stats AS
SELECT experiment, revision, variant, toStartOfMinute(ts) AS minute,
       uniqExactState(unit_id) AS converting_units,
       uniqExactState(event_id) AS conversions,
       toUInt64(count(value)) AS valued_conversions,
       sum(ifNull(value, 0)) AS value_sum,
       sum(ifNull(value * value, 0)) AS value_sumsq
FROM conversions
GROUP BY experiment, revision, variant, minute;

CREATE MATERIALIZED VIEW IF NOT EXISTS assignment_flags_to_minute_stats TO variant_minute_stats AS
SELECT experiment, revision, logged_variant AS variant, toStartOfMinute(exposure_ts) AS minute,
       uniqExactMapState(map(toString(reason), toString(event_id))) AS flags
FROM assignment_flags
GROUP BY experiment, revision, variant, minute;

CREATE MATERIALIZED VIEW IF NOT EXISTS variant_switches_to_minute_stats TO variant_minute_stats AS
SELECT experiment, revision, first_variant AS variant, toStartOfMinute(exposure_ts) AS minute,
       uniqExactState(unit_id) AS multi_variant_units
FROM variant_switches
WHERE reason = 'multiple_variants'
GROUP BY experiment, revision, variant, minute;

-- The merged statistics, one row per (experiment, revision, variant, minute).
CREATE VIEW IF NOT EXISTS variant_minutes AS
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
