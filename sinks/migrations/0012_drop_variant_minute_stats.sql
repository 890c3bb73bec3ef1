-- variant_minute_stats (0003) summed conversion values per block: a conversion the jobs re-emit at a new
-- offset came with a new insert token and counted twice. The aggregates of 0010 and 0011 replace it,
-- exact under every replay, and the variant_minutes view (sinks/views/variant_minutes.sql) now reads them.

DROP VIEW IF EXISTS variant_minutes;
DROP VIEW IF EXISTS first_exposures_to_minute_stats;
DROP VIEW IF EXISTS conversions_to_minute_stats;
DROP VIEW IF EXISTS assignment_flags_to_minute_stats;
DROP VIEW IF EXISTS variant_switches_to_minute_stats;
DROP TABLE IF EXISTS variant_minute_stats;
