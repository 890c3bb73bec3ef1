"""Settings for the ``abstream`` command line: one frozen object, read from ``ABSTREAM_*`` variables.

Library classes never read the environment; the CLI builds a :class:`Settings` once and passes
explicit values down.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "default_cache_dir", "default_data_dir"]


def default_data_dir() -> Path:
    """Where state lives (broker data, logs, the embedded ClickHouse): ``$XDG_DATA_HOME/abstream``."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "abstream"


def default_cache_dir() -> Path:
    """Where downloads live (the Kafka jars): ``$XDG_CACHE_HOME/abstream``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "abstream"


class Settings(BaseSettings):
    """Everything the CLI needs to find Kafka and ClickHouse.

    ``kafka_bootstrap`` left unset means: the local cluster started by ``abstream local up`` if it
    runs, else ``127.0.0.1:9092``. ``clickhouse_url`` left unset means the embedded chDB store
    under the data dir.
    """

    model_config = SettingsConfigDict(env_prefix="ABSTREAM_", frozen=True, extra="forbid")

    data_dir: Path = Field(default_factory=default_data_dir)
    cache_dir: Path = Field(default_factory=default_cache_dir)
    kafka_bootstrap: str | None = None
    clickhouse_url: str = ""
    clickhouse_database: str = "abstream"
    topic_prefix: str = "abstream."
    local_kafka_heap: str = Field(default="512m", pattern=r"^\d+[kmg]$")

    @model_validator(mode="after")
    def _default_clickhouse_url(self) -> Settings:
        if not self.clickhouse_url:
            object.__setattr__(self, "clickhouse_url", f"chdb://{self.data_dir / 'clickhouse'}")
        return self

    @property
    def local_kafka_dir(self) -> Path:
        return self.data_dir / "kafka"
