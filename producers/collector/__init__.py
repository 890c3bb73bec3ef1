"""The HTTP collector: a small aiohttp app that takes exposure and event batches from browsers and apps.

``producers.collector.app`` needs aiohttp (``pip install 'abstream[collector]'``); the settings do not, so
the CLI can read and check them first. Run it with ``abstream collector``; see ``docs/collector.md``.
"""

from __future__ import annotations

from .settings import CollectorSettings

__all__ = ["CollectorSettings"]
