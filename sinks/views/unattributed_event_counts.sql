-- Events attributed to no experiment, by reason and name (each event once, with its latest reason).
--
--     SELECT * FROM unattributed_event_counts ORDER BY events DESC

CREATE OR REPLACE VIEW unattributed_event_counts AS
SELECT reason, name, count() AS events, uniqExact(unit_id) AS units, min(ts) AS first_ts, max(ts) AS last_ts
FROM unattributed_events FINAL
GROUP BY reason, name;
