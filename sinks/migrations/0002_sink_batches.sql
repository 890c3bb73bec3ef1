-- The sink's batch ledger: the offset range of every batch, recorded before the batch is inserted.
-- A batch replayed after a crash or a rebalance is re-formed with exactly the recorded range, so it
-- carries the same deduplication token as the first attempt (see sinks/worker.py). Kept as long as
-- the longest topic retention: older offsets cannot be replayed anyway.

CREATE TABLE IF NOT EXISTS sink_batches (
    topic String,
    partition UInt32,
    first_offset UInt64,
    last_offset UInt64,
    rows UInt32,
    dead_letters UInt32,
    token String,
    planned_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(planned_at)
ORDER BY (topic, partition, first_offset)
TTL toDateTime(planned_at) + INTERVAL 90 DAY;
