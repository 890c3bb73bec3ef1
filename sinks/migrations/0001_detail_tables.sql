-- Detail tables: one row per record the stream jobs produced, keyed by the record's natural identity.
--
-- Two layers keep replays from double counting:
-- 1. every insert carries a deduplication token derived from its Kafka offset range, and the
--    non_replicated_deduplication_window below makes ClickHouse drop a repeated block (and, with
--    deduplicate_blocks_in_dependent_materialized_views, the materialized views' blocks too);
-- 2. the tables are ReplacingMergeTree on the natural key, and the analyst's view reads them
--    deduplicated (FINAL), so even a replay older than the window cannot change a report.
-- source_partition / source_offset say which Kafka record a row came from. Integer columns are as wide
-- and as signed as their Avro types, so no decodable record can fail an insert and block its partition.

CREATE TABLE IF NOT EXISTS first_exposures (
    experiment LowCardinality(String),
    unit_id String,
    event_id UUID,
    revision Int32,
    variant LowCardinality(String),
    unit_type LowCardinality(String),
    scheme LowCardinality(String),
    exposure_ts DateTime64(3, 'UTC') COMMENT 'client_ts of the first exposure',
    received_ts Nullable(DateTime64(3, 'UTC')),
    duplicates UInt64 COMMENT 'later exposures folded into this one; the highest re-emission wins',
    sampling_rate Float64,
    forced Bool,
    sticky_bucket_used Bool,
    hash_used Bool,
    context Map(LowCardinality(String), String),
    source_partition UInt32,
    source_offset UInt64,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(duplicates)
ORDER BY (experiment, unit_id, event_id)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS conversions (
    experiment LowCardinality(String),
    event_id UUID,
    unit_id String,
    unit_type LowCardinality(String),
    name LowCardinality(String),
    value Nullable(Float64),
    ts DateTime64(3, 'UTC'),
    received_ts Nullable(DateTime64(3, 'UTC')),
    revision Int32,
    variant LowCardinality(String) COMMENT 'variant of the first exposure the event is attributed to',
    exposure_event_id UUID,
    exposure_ts DateTime64(3, 'UTC'),
    latency_ms Int64,
    late Bool,
    properties Map(String, String),
    source_partition UInt32,
    source_offset UInt64,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree
ORDER BY (experiment, event_id)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS assignment_flags (
    experiment LowCardinality(String),
    event_id UUID,
    reason LowCardinality(String),
    revision Int32,
    unit_type LowCardinality(String),
    unit_id String,
    logged_variant LowCardinality(String),
    expected_variant Nullable(String),
    detail String,
    variants_seen Array(String),
    exposure_ts DateTime64(3, 'UTC'),
    flagged_ts DateTime64(3, 'UTC'),
    source_partition UInt32,
    source_offset UInt64,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(flagged_ts)
ORDER BY (experiment, event_id, reason)
SETTINGS non_replicated_deduplication_window = 10000;

-- AssignmentFlag records with reason multiple_variants, re-emitted whenever a unit shows a new variant:
-- the latest flag per (experiment, unit) carries every variant seen, first seen first.
CREATE TABLE IF NOT EXISTS variant_switches (
    experiment LowCardinality(String),
    unit_id String,
    event_id UUID,
    reason LowCardinality(String),
    revision Int32,
    unit_type LowCardinality(String),
    logged_variant LowCardinality(String),
    expected_variant Nullable(String),
    detail String,
    variants_seen Array(String),
    first_variant LowCardinality(String) COMMENT 'variants_seen[1], else expected_variant, else logged_variant',
    exposure_ts DateTime64(3, 'UTC'),
    flagged_ts DateTime64(3, 'UTC'),
    source_partition UInt32,
    source_offset UInt64,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(flagged_ts)
ORDER BY (experiment, unit_id)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS experiment_definitions (
    key LowCardinality(String),
    revision Int32,
    title String,
    unit_type LowCardinality(String),
    scheme LowCardinality(String),
    scheme_params String,
    variant_names Array(String) COMMENT 'in hashing order',
    variant_weights Array(Int32),
    fallback_variant String,
    state LowCardinality(String),
    rollout_variant Nullable(String),
    start_ts Nullable(DateTime64(3, 'UTC')),
    end_ts Nullable(DateTime64(3, 'UTC')),
    attribution_window_ms Int64,
    dedupe LowCardinality(String),
    dedupe_window_ms Nullable(Int64),
    owner Nullable(String),
    published_ts DateTime64(3, 'UTC'),
    definition_hash String,
    source_partition UInt32,
    source_offset UInt64,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(published_ts)
ORDER BY (key, revision)
SETTINGS non_replicated_deduplication_window = 10000;
