"""The ClickHouse schema as versioned migrations: ``NNNN_name.sql``, applied in order by ``sinks.migrator``.

A migration is never edited once applied (its checksum is recorded); change the schema with a new file.
Statements use ``IF NOT EXISTS`` (or ``CREATE OR REPLACE`` for a view) so that a migration interrupted
half-way can simply be run again.
"""
