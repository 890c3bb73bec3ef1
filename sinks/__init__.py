"""ClickHouse: the client built from settings, the sink, the analyst's views."""
