"""ClickHouse: the client built from settings, the sink, the analyst's views.

- ``clickhouse``: ``connect(url)``, the only way in (embedded chDB or a server);
- ``migrations/`` + ``migrator``: the schema as versioned SQL (tables, materialized views, the report view);
- ``worker`` (+ ``batching``, ``ledger``, ``tables``, ``dead_letters``): Kafka into ClickHouse, idempotently;
- ``report`` + ``stats``: the experiment report and its statistics; ``server`` + ``endpoint``: the sink's
  read API, which is how other processes read an embedded store the running sink holds;
- ``service`` + ``settings``: the ``abstream sink run`` process wired together.
"""
