-- The ledger also records that a batch's rows are in: a second row for its range, with inserted_token set,
-- written after the insert and before the offset commit. A replayed range whose token is recorded as
-- inserted is not inserted again, so a replay older than ClickHouse's deduplication window (the last
-- 10,000 tokens per table; a consumer group reset weeks later) cannot count a value sum twice either.

ALTER TABLE sink_batches ADD COLUMN IF NOT EXISTS inserted_token String DEFAULT ''
    COMMENT 'the token of the batch whose rows were inserted for this range (empty: not known to be inserted)';
