-- Events attributed to no experiment, counted by (reason, name) without reading them: the report's last
-- line sums a few rows instead of a FINAL over unattributed_events. Kept as the other aggregates are
-- (sinks/aggregates.py): after each batch, the events' latest reason is read by key, compared with the
-- stored one, and the differences go into unattributed_stats under the batch's token; a replay, even one
-- that decided an event with another reason, leaves each event counted once, under its latest reason.

CREATE TABLE IF NOT EXISTS unattributed_states (
    event_id UUID,
    reason LowCardinality(String),
    name LowCardinality(String),
    updated UInt64 COMMENT 'the sink writes an event''s newer state with a higher value'
) ENGINE = ReplacingMergeTree(updated)
ORDER BY event_id
SETTINGS index_granularity = 1024;

CREATE TABLE IF NOT EXISTS unattributed_stats (
    reason LowCardinality(String),
    name LowCardinality(String),
    events Int64
) ENGINE = SummingMergeTree
ORDER BY (reason, name)
SETTINGS non_replicated_deduplication_window = 10000;

-- The events a store already holds; each insert can run again after an interruption.
INSERT INTO unattributed_stats (reason, name, events)
SETTINGS insert_deduplicate = 1, insert_deduplication_token = '0013/unattributed_stats'
SELECT reason, name, count() FROM unattributed_events FINAL
WHERE event_id NOT IN (SELECT event_id FROM unattributed_states)
GROUP BY reason, name;

INSERT INTO unattributed_states (event_id, reason, name, updated)
SELECT event_id, reason, name, 1 FROM unattributed_events FINAL
WHERE event_id NOT IN (SELECT event_id FROM unattributed_states);
