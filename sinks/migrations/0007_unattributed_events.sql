-- Events attributed to no experiment, from the stream jobs' unattributed-events topic: counted, never
-- silently dropped. One row per event (ReplacingMergeTree by event_id: a replay, even one that decided the
-- event with another reason, leaves one row under FINAL).
--   reason  never_exposed   the unit had no first exposure at all while the event waited its allowed lateness
--           outside_window  it had first exposures, but no attribution window of theirs holds the event
--           late            the event reached the jobs past its allowed lateness, with no window holding it
--
--     SELECT * FROM unattributed_event_counts ORDER BY events DESC

CREATE TABLE IF NOT EXISTS unattributed_events (
    event_id UUID,
    unit_id String,
    unit_type LowCardinality(String),
    name LowCardinality(String),
    value Nullable(Float64),
    ts DateTime64(3, 'UTC'),
    received_ts Nullable(DateTime64(3, 'UTC')),
    reason LowCardinality(String),
    properties Map(String, String),
    source_partition UInt32,
    source_offset UInt64,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree
ORDER BY event_id
SETTINGS non_replicated_deduplication_window = 10000;

CREATE VIEW IF NOT EXISTS unattributed_event_counts AS
SELECT reason, name, count() AS events, uniqExact(unit_id) AS units, min(ts) AS first_ts, max(ts) AS last_ts
FROM unattributed_events FINAL
GROUP BY reason, name;
