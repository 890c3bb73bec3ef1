"""The sink process's read-only HTTP API (aiohttp), served from a background thread.

chDB lets only the process that owns the store read it, so the sink answers for it:

- ``GET /healthz``: the worker's counters (records, rows inserted, dead letters, retries, idle);
- ``GET /api/report`` and ``GET /api/report/{experiment}`` (``?policy=exclude|first_seen``): the
  report JSON of ``sinks.report``.

More routes (the dashboard) plug in by adding to the application ``build_app`` returns; handlers
run blocking ClickHouse queries in the default executor, so the event loop stays free.

    server = ApiServer(build_app(report=..., health=...), host="127.0.0.1", port=0)
    port = server.start()
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, cast, get_args

from aiohttp import web

from abstream.errors import ReportError
from sinks.settings import MultiVariantPolicy

__all__ = ["HEALTH", "REPORT", "ApiServer", "build_app"]

ReportSource = Callable[[str | None, MultiVariantPolicy], dict[str, Any]]
REPORT: web.AppKey[ReportSource] = web.AppKey("report")
HEALTH: web.AppKey[Callable[[], dict[str, Any]]] = web.AppKey("health")
_POLICY: web.AppKey[MultiVariantPolicy] = web.AppKey("default_policy")


def build_app(
    *, report: ReportSource, health: Callable[[], dict[str, Any]], default_policy: MultiVariantPolicy = "exclude"
) -> web.Application:
    """The API application; add routes to it before starting the server."""
    app = web.Application()
    app[REPORT], app[HEALTH], app[_POLICY] = report, health, default_policy
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/api/report", _report)
    app.router.add_get("/api/report/{experiment}", _report)
    return app


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", **request.app[HEALTH]()})


async def _report(request: web.Request) -> web.Response:
    policy = request.query.get("policy", request.app[_POLICY])
    if policy not in get_args(MultiVariantPolicy):
        return web.json_response({"error": f"policy must be one of {get_args(MultiVariantPolicy)}"}, status=400)
    policy = cast(MultiVariantPolicy, policy)
    experiment = request.match_info.get("experiment")
    loop = asyncio.get_running_loop()
    try:
        body = await loop.run_in_executor(None, request.app[REPORT], experiment, policy)
    except ReportError as exc:
        return web.json_response({"error": str(exc)}, status=404)
    return web.json_response(body)


class ApiServer:
    """Runs an aiohttp application on its own event loop in a daemon thread."""

    def __init__(self, app: web.Application, *, host: str, port: int) -> None:
        self._app, self._host, self._port = app, host, port
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(app, access_log=None)
        self._thread = threading.Thread(target=self._loop.run_forever, name="sink-api", daemon=True)

    def start(self) -> int:
        """Bind and serve; the port actually bound (useful with port 0)."""
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._serve(), self._loop)
        return future.result(timeout=30)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()

    async def _serve(self) -> int:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        return int(self._runner.addresses[0][1])

    async def _shutdown(self) -> None:
        await self._runner.cleanup()
        await self._loop.shutdown_default_executor()
