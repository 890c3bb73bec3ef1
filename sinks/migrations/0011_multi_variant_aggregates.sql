-- The multi-variant units' own share of the statistics, so that the exclude policy subtracts a few
-- hundred rows instead of reading those units' state by key (a cost that grew with the units).
--
-- A unit's state records whether it is a multi-variant unit (a variant_switches row with reason
-- multiple_variants). The sink adds its contribution to exposure_stats / metric_stats as before and,
-- when it is a multi-variant unit, to multi_exposure_stats / multi_metric_stats too; a switch flag
-- arriving later moves the unit's existing contribution there (sinks/aggregates.py). The exclude
-- policy is then stats - multi_stats, per cell.

ALTER TABLE exposure_units ADD COLUMN IF NOT EXISTS multi Bool DEFAULT false
    COMMENT 'the unit logged more than one variant: its share is in multi_exposure_stats too';
ALTER TABLE metric_units ADD COLUMN IF NOT EXISTS multi Bool DEFAULT false
    COMMENT 'the unit logged more than one variant: its share is in multi_metric_stats too';

-- The same columns, engine and key as the tables they are a share of.
CREATE TABLE IF NOT EXISTS multi_exposure_stats AS exposure_stats;
CREATE TABLE IF NOT EXISTS multi_metric_stats AS metric_stats;

-- A store that already holds unit states: the multi-variant units' shares, then their states marked.
-- Each insert carries a fixed token, so a run interrupted between them and run again adds nothing twice.
INSERT INTO multi_exposure_stats (experiment, revision, variant, minute, units, exposures)
SETTINGS insert_deduplicate = 1, insert_deduplication_token = '0011/multi_exposure_stats'
SELECT experiment, revision, variant, toStartOfMinute(first_ts), count(), sum(exposures)
FROM exposure_units FINAL
WHERE NOT multi AND (experiment, unit_id) IN (
    SELECT experiment, unit_id FROM variant_switches WHERE reason = 'multiple_variants'
)
GROUP BY experiment, revision, variant, toStartOfMinute(first_ts);

INSERT INTO multi_metric_stats (experiment, metric, version, variant, minute, nonzero, sum_x, sum_x2, sum_y,
                                sum_y2, sum_xy)
SETTINGS insert_deduplicate = 1, insert_deduplication_token = '0011/multi_metric_stats'
SELECT experiment, metric, version, variant, minute, countIf(x != 0), sum(x), sum(x * x), sum(y), sum(y * y),
       sum(x * y)
FROM metric_units FINAL
WHERE NOT multi AND (experiment, unit_id) IN (
    SELECT experiment, unit_id FROM variant_switches WHERE reason = 'multiple_variants'
)
GROUP BY experiment, metric, version, variant, minute;

INSERT INTO exposure_units (experiment, unit_id, variant, revision, first_ts, exposures, updated, multi)
SELECT experiment, unit_id, variant, revision, first_ts, exposures, updated + 1, true
FROM exposure_units FINAL
WHERE NOT multi AND (experiment, unit_id) IN (
    SELECT experiment, unit_id FROM variant_switches WHERE reason = 'multiple_variants'
);

INSERT INTO metric_units (experiment, unit_id, metric, version, variant, minute, x, y, updated, multi)
SELECT experiment, unit_id, metric, version, variant, minute, x, y, updated + 1, true
FROM metric_units FINAL
WHERE NOT multi AND (experiment, unit_id) IN (
    SELECT experiment, unit_id FROM variant_switches WHERE reason = 'multiple_variants'
);
