-- Per-unit state and per-variant sufficient statistics, maintained by the sink batch by batch
-- (sinks/aggregates.py), so that the report and the dashboard read a few hundred rows whatever the
-- number of units.
--
-- The protocol, per batch of first exposures or conversions, after its detail rows are in:
-- 1. recompute the state of every unit the batch touches from the deduplicated detail (FINAL on those
--    units only: the tables below are ordered by unit);
-- 2. read the units' stored state; insert the differences (new - old) into the statistics tables,
--    under a token derived from the batch's, so a retry after a crash at step 3 is dropped;
-- 3. insert the changed units' new state.
-- A replay (a sink group reset, or the jobs re-emitting conversions at new offsets) recomputes the same
-- state from the same deduplicated detail, finds nothing changed and inserts nothing: no number moves.

-- The conversions again, ordered by unit so that one unit's conversions are read without a scan.
CREATE TABLE IF NOT EXISTS unit_conversions (
    experiment LowCardinality(String),
    unit_id String,
    event_id UUID,
    name LowCardinality(String),
    value Nullable(Float64),
    properties Map(String, String),
    variant LowCardinality(String),
    revision Int32,
    exposure_event_id UUID,
    exposure_ts DateTime64(3, 'UTC'),
    latency_ms Int64,
    late Bool
) ENGINE = ReplacingMergeTree
ORDER BY (experiment, unit_id, event_id)
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 1024;

CREATE MATERIALIZED VIEW IF NOT EXISTS conversions_to_unit_conversions TO unit_conversions AS
SELECT experiment, unit_id, event_id, name, value, properties, variant, revision, exposure_event_id, exposure_ts,
       latency_ms, late
FROM conversions;

-- The conversions a store already holds (run again, it adds rows FINAL folds away).
INSERT INTO unit_conversions
SELECT experiment, unit_id, event_id, name, value, properties, variant, revision, exposure_event_id, exposure_ts,
       latency_ms, late
FROM conversions;

-- A unit's exposure state: the variant and revision of its earliest first exposure, and its exposures.
CREATE TABLE IF NOT EXISTS exposure_units (
    experiment LowCardinality(String),
    unit_id String,
    variant LowCardinality(String),
    revision Int32,
    first_ts DateTime64(3, 'UTC'),
    exposures UInt64,
    updated UInt64 COMMENT 'the sink writes a unit''s newer state with a higher value'
) ENGINE = ReplacingMergeTree(updated)
ORDER BY (experiment, unit_id)
SETTINGS index_granularity = 1024;

-- Units and exposures per (experiment, revision, variant, minute of the first exposure): sums of differences.
CREATE TABLE IF NOT EXISTS exposure_stats (
    experiment LowCardinality(String),
    revision Int32,
    variant LowCardinality(String),
    minute DateTime('UTC'),
    units Int64,
    exposures Int64
) ENGINE = SummingMergeTree
ORDER BY (experiment, revision, variant, minute)
SETTINGS non_replicated_deduplication_window = 10000;

-- A unit's metric values: x (the numerator, capped when the metric has a fixed cap) and y (a ratio's
-- denominator; for the built-in metric _conversions: the late conversions), from the conversions
-- attributed to its earliest first exposure. version identifies the metric definition they follow.
CREATE TABLE IF NOT EXISTS metric_units (
    experiment LowCardinality(String),
    unit_id String,
    metric LowCardinality(String),
    version LowCardinality(String),
    variant LowCardinality(String),
    minute DateTime('UTC'),
    x Float64,
    y Float64,
    updated UInt64
) ENGINE = ReplacingMergeTree(updated)
ORDER BY (experiment, unit_id, metric, version)
SETTINGS index_granularity = 1024;

-- Sufficient statistics per (experiment, metric, version, variant, minute of the first exposure):
-- the units with x != 0, and the sums a mean, a proportion or a ratio needs (the units themselves,
-- zeros included, are in exposure_stats).
CREATE TABLE IF NOT EXISTS metric_stats (
    experiment LowCardinality(String),
    metric LowCardinality(String),
    version LowCardinality(String),
    variant LowCardinality(String),
    minute DateTime('UTC'),
    nonzero Int64,
    sum_x Float64,
    sum_x2 Float64,
    sum_y Float64,
    sum_y2 Float64,
    sum_xy Float64
) ENGINE = SummingMergeTree
ORDER BY (experiment, metric, version, variant, minute)
SETTINGS non_replicated_deduplication_window = 10000;

-- What has been computed over every unit of an experiment once (then per batch): the metric versions,
-- and (metric '_exposures') the exposure state. A store that predates this migration is filled so.
CREATE TABLE IF NOT EXISTS metric_backfills (
    experiment LowCardinality(String),
    metric LowCardinality(String),
    version LowCardinality(String),
    done_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree
ORDER BY (experiment, metric, version);

ALTER TABLE experiment_definitions ADD COLUMN IF NOT EXISTS metrics String DEFAULT ''
    COMMENT 'the revision''s metrics block with the definitions it was published with (JSON; empty: none)';

