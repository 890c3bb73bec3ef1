"""Settings of a stream-jobs worker (``abstream jobs run``), from ``ABSTREAM_*`` variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from abstream.settings import default_data_dir

__all__ = ["JobsSettings"]

Job = Literal["first_exposures", "variant_switches", "assignment_flags", "attributed_conversions"]


class JobsSettings(BaseSettings):
    """One worker of the Faust app. Workers with the same ``app_id`` share the partitions."""

    model_config = SettingsConfigDict(env_prefix="ABSTREAM_", frozen=True, extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = "abstream."
    data_dir: Path = Field(default_factory=default_data_dir)
    app_id: str = "abstream-jobs"
    worker_name: str = "worker-1"
    jobs: tuple[Job, ...] = ("first_exposures", "variant_switches", "assignment_flags", "attributed_conversions")
    allowed_lateness_ms: int = Field(default=10 * 60_000, ge=0)
    state_grace_ms: int = Field(default=7 * 24 * 3_600_000, ge=0)
    sweep_interval_s: float = Field(default=60.0, gt=0)
    sweep_batch: int = Field(default=1000, ge=1)
    batch_max: int = Field(default=500, ge=1)
    batch_within_s: float = Field(default=0.01, gt=0)
    commit_interval_s: float = Field(default=1.0, gt=0)
    web_port: int | None = None

    @property
    def worker_dir(self) -> Path:
        """This worker's table store (RocksDB): one per worker, so several can share a machine, and one per
        app, because a store is only valid with the changelog topics of the app that wrote it."""
        return self.data_dir / "jobs" / self.app_id / self.worker_name

    def topic(self, role: str) -> str:
        return self.topic_prefix + role.replace("_", "-")
