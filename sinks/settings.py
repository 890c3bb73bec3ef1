"""Settings of the sink's entry points (``abstream sink migrate|run``, ``abstream report``).

The CLI's :class:`~abstream.settings.Settings` (Kafka, ClickHouse URL and database, data dir, topic
prefix) plus what only the sink needs, all from ``ABSTREAM_*`` variables:

    ABSTREAM_SINK_BATCH_ROWS=5000 ABSTREAM_SINK_BATCH_INTERVAL_S=1 abstream sink run
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from abstream.settings import Settings

__all__ = ["MultiVariantPolicy", "SinkSettings"]

MultiVariantPolicy = Literal["exclude", "first_seen"]
"""What the analyst's view does with units that logged more than one variant of an experiment:
``exclude`` drops them from units and conversions, ``first_seen`` counts them in their first variant."""


class SinkSettings(Settings):
    """One frozen settings object per sink entry point; unknown ``ABSTREAM_*`` keys passed in fail loudly."""

    sink_group: str = Field(default="abstream-sink", min_length=1)
    sink_batch_rows: int = Field(default=5000, ge=1, le=1_000_000)
    sink_batch_interval_s: float = Field(default=1.0, gt=0, le=300)
    sink_retry_max_s: float = Field(default=30.0, gt=0)
    sink_api_host: str = "127.0.0.1"
    sink_api_port: int = Field(default=0, ge=0, le=65535)
    multi_variant_policy: MultiVariantPolicy = "exclude"

    @property
    def endpoint_file(self) -> Path:
        """Where a running sink records its pid and API port, so ``abstream report`` can find it."""
        return self.data_dir / "sink.json"
