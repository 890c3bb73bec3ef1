"""Settings of the HTTP collector (``abstream collector``): one frozen object from ``ABSTREAM_COLLECTOR_*``.

Kafka's address and the topic prefix are the CLI's own settings (``ABSTREAM_KAFKA_BOOTSTRAP``,
``ABSTREAM_TOPIC_PREFIX``); list-valued variables are JSON: ``ABSTREAM_COLLECTOR_TOKENS='["k1", "k2"]'``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["CollectorSettings"]


class CollectorSettings(BaseSettings):
    """Where the collector listens and what it lets in.

    Every request needs ``Authorization: Bearer <one of tokens>`` (or ``?token=``, for ``sendBeacon``,
    which cannot set headers) unless ``allow_anonymous`` is set, explicitly, with no tokens. Each client
    (its token, else its IP) gets a token bucket of ``rate_burst`` requests refilled at
    ``rate_per_s``. Browsers are let in only from ``allowed_origins`` (``["*"]``: any).
    ``spool_dir`` None means ``<data dir>/collector/spool``.
    """

    model_config = SettingsConfigDict(env_prefix="ABSTREAM_COLLECTOR_", frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8787, ge=0, le=65535)
    tokens: tuple[SecretStr, ...] = ()
    allow_anonymous: bool = False
    max_body_bytes: int = Field(default=1 << 20, gt=0)
    max_batch_records: int = Field(default=1000, gt=0)
    rate_per_s: float = Field(default=20.0, gt=0)
    rate_burst: int = Field(default=100, ge=1)
    allowed_origins: tuple[str, ...] = ()
    trust_forwarded_for: bool = False
    spool_dir: Path | None = None

    @model_validator(mode="after")
    def _auth_is_explicit(self) -> CollectorSettings:
        if self.allow_anonymous and self.tokens:
            raise ValueError("allow_anonymous: set it only with no tokens (tokens would be ignored)")
        if not self.allow_anonymous and not self.tokens:
            raise ValueError(
                "tokens: none configured; set ABSTREAM_COLLECTOR_TOKENS='[\"<token>\"]' "
                "or ABSTREAM_COLLECTOR_ALLOW_ANONYMOUS=true to accept anyone"
            )
        if any(not t.get_secret_value() for t in self.tokens):
            raise ValueError("tokens: an empty token would let anyone in")
        return self

    def spool_path(self, data_dir: Path) -> Path:
        """``spool_dir``, or the collector's default under ``data_dir``."""
        return self.spool_dir or data_dir / "collector" / "spool"
