"""What the per-unit aggregates cost on disk, per (experiment, metric, unit), from ``system.parts``.

rows = storage(client, 10_000_000, METRICS)   # one dict per table
"""

from __future__ import annotations

from typing import Any

from schemas.metrics import ExperimentMetrics

__all__ = ["storage"]

_PARTS = """
SELECT table, sum(rows), sum(bytes_on_disk) FROM system.parts
WHERE database = currentDatabase() AND active GROUP BY table
"""
# What each table's bytes are divided by: (label, SQL of the count).
_PER = {
    "metric_units": ("per (experiment, metric, exposed unit)", "SELECT count() FROM exposure_units FINAL"),
    "exposure_units": ("per exposed unit", "SELECT count() FROM exposure_units FINAL"),
    "unit_conversions": ("per exposed unit", "SELECT count() FROM exposure_units FINAL"),
    "conversions": ("per exposed unit", "SELECT count() FROM exposure_units FINAL"),
    "first_exposures": ("per exposed unit", "SELECT count() FROM exposure_units FINAL"),
    "metric_stats": ("per row", "SELECT 1"),
    "exposure_stats": ("per row", "SELECT 1"),
}


def storage(client: Any, units: int, metrics: ExperimentMetrics) -> list[dict[str, Any]]:
    """Rows, bytes on disk and bytes per row of the aggregates (and the detail, for scale)."""
    parts = {table: (int(rows), int(size)) for table, rows, size in client.query(_PARTS).result_rows}
    per_metric = 1 + len(list(metrics.in_order()))  # the built-in _conversions and the experiment's own
    out = []
    for table, (label, sql) in _PER.items():
        rows, size = parts.get(table, (0, 0))
        divisor = int(client.query(sql).result_rows[0][0])
        if table == "metric_units":
            divisor *= per_metric
        per = size / divisor if label != "per row" else size / max(rows, 1)
        out.append({
            "units": units, "table": table, "rows": rows, "bytes": size, "bytes_per_row": size / max(rows, 1),
            "per": label, "bytes_per_unit": per,
        })  # fmt: skip
    return out
