"""The sink process's read-only HTTP API (aiohttp), served from a background thread.

chDB lets only the process that owns the store read it, so the sink answers for it:

- ``GET /healthz``: the worker's counters (records, rows inserted, dead letters, retries, idle);
- ``GET /api/report`` and ``GET /api/report/{experiment}`` (``?policy=exclude|first_seen``): the
  report JSON of ``sinks.report``;
- with a ``dashboard`` source (``sinks.dashboard``): the pages ``GET /`` (experiments) and
  ``GET /experiments/{experiment}``, their script ``GET /static/dashboard.js``, and the JSON they poll,
  ``GET /api/dashboard`` and ``GET /api/dashboard/{experiment}`` (``?policy=`` as above).

Handlers run blocking ClickHouse queries in the default executor, so the event loop stays free.

    server = ApiServer(build_app(report=..., health=..., dashboard=DashboardData(client)), host="127.0.0.1", port=0)
    port = server.start()
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from typing import Any, cast, get_args

from aiohttp import web

from abstream.errors import ReportError
from sinks.dashboard import DashboardSource, render_page, static_asset
from sinks.settings import MultiVariantPolicy

__all__ = ["DASHBOARD", "HEALTH", "REPORT", "ApiServer", "build_app"]

ReportSource = Callable[[str | None, MultiVariantPolicy, str | None], dict[str, Any]]
REPORT: web.AppKey[ReportSource] = web.AppKey("report")
HEALTH: web.AppKey[Callable[[], dict[str, Any]]] = web.AppKey("health")
DASHBOARD: web.AppKey[DashboardSource] = web.AppKey("dashboard")
_POLICY: web.AppKey[MultiVariantPolicy] = web.AppKey("default_policy")
_SCRIPT: web.AppKey[bytes] = web.AppKey("dashboard_script")
# The pages load only their own script and talk only to this server; no CDN, no inline script.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def build_app(
    *,
    report: ReportSource,
    health: Callable[[], dict[str, Any]],
    default_policy: MultiVariantPolicy = "exclude",
    dashboard: DashboardSource | None = None,
) -> web.Application:
    """The API application (with the dashboard when given its source); add routes before starting the server."""
    app = web.Application()
    app[REPORT], app[HEALTH], app[_POLICY] = report, health, default_policy
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/api/report", _report)
    app.router.add_get("/api/report/{experiment}", _report)
    if dashboard is not None:
        app[DASHBOARD], app[_SCRIPT] = dashboard, static_asset("dashboard.js")
        app.router.add_get("/", _page)
        app.router.add_get("/experiments/{experiment}", _page)
        app.router.add_get("/static/dashboard.js", _script)
        app.router.add_get("/api/dashboard", _dashboard)
        app.router.add_get("/api/dashboard/{experiment}", _dashboard)
    return app


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", **request.app[HEALTH]()})


def _policy(request: web.Request) -> MultiVariantPolicy:
    policy = request.query.get("policy", request.app[_POLICY])
    if policy not in get_args(MultiVariantPolicy):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"policy must be one of {get_args(MultiVariantPolicy)}"}),
            content_type="application/json",
        )
    return cast(MultiVariantPolicy, policy)


async def _answer(query: Callable[..., dict[str, Any]], *args: Any) -> web.Response:
    """Run a blocking query off the loop; a ReportError (no such experiment, missing views) is a 404."""
    try:
        body = await asyncio.get_running_loop().run_in_executor(None, query, *args)
    except ReportError as exc:
        return web.json_response({"error": str(exc)}, status=404)
    return web.json_response(body, headers={"Cache-Control": "no-store"})


async def _report(request: web.Request) -> web.Response:
    experiment, metric = request.match_info.get("experiment"), request.query.get("metric")
    return await _answer(request.app[REPORT], experiment, _policy(request), metric)


async def _dashboard(request: web.Request) -> web.Response:
    source, policy = request.app[DASHBOARD], _policy(request)
    experiment = request.match_info.get("experiment")
    if experiment is None:
        return await _answer(source.index, policy)
    return await _answer(source.experiment, experiment, policy)


async def _page(request: web.Request) -> web.Response:
    page = render_page(experiment=request.match_info.get("experiment"), policy=_policy(request))
    return web.Response(text=page, content_type="text/html", headers=_PAGE_HEADERS)


async def _script(request: web.Request) -> web.Response:
    return web.Response(
        body=request.app[_SCRIPT], content_type="text/javascript", charset="utf-8", headers=_PAGE_HEADERS
    )


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
