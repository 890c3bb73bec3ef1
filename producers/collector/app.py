"""The HTTP collector: browsers and mobile apps post batches of exposures and events; Kafka gets them.

    POST /v1/batch   {"exposures": [...], "events": [...]}  ->  200 {"accepted": n, "rejected": [...]}
    GET  /healthz    Kafka reachable? records waiting in the spool? counters.

Every answer is JSON, errors included (``{"error": "<code>", "message": "..."}``, never a stack trace):
401 without a valid token, 403 from an origin not allowed, 413 for a body or batch too large, 415 for
a body that is not JSON or text, 429 (with ``Retry-After``) past the client's rate. Records are
validated one by one (:mod:`producers.collector.validation`) and produced through an
:class:`~producers.logger.ExposureLogger` (:mod:`producers.collector.ingest`), so a Kafka outage spools them
instead of failing.

    app = make_app(CollectorSettings(tokens=["k1"]), ExposureLogger(bootstrap_servers=..., spool_dir=...))
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from abstream.errors import BatchTooLargeError, InvalidRecordError
from producers.logger import ExposureLogger, LoggerClosedError, Source
from producers.records import new_event_id

from .ingest import log_record
from .ratelimit import TokenBucketLimiter
from .settings import CollectorSettings
from .validation import Batch, FieldError, Rejected, parse_batch

try:
    from aiohttp import web
except ImportError as exc:
    raise ImportError(f"the HTTP collector needs aiohttp: pip install 'abstream[collector]' ({exc})") from exc

__all__ = ["COLLECTOR_KEY", "Collector", "CollectorStats", "error", "make_app", "serve"]

log = logging.getLogger("abstream.producers.collector")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_CONTENT_TYPES = ("application/json", "text/plain", "application/octet-stream")
_PREFLIGHT = {
    "Access-Control-Allow-Methods": "POST, GET, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Max-Age": "600",
}


@dataclass
class CollectorStats:
    """Request counters since start, shown by ``/healthz``."""

    accepted: int = 0
    rejected: int = 0
    bad_requests: int = 0
    unauthorized: int = 0
    forbidden_origin: int = 0
    rate_limited: int = 0
    too_large: int = 0


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """The JSON error every failure answers with."""
    return web.json_response({"error": code, "message": message}, status=status, headers=headers)


class Collector:
    """The app's state and behaviour: settings, the logger, the rate limiter, the counters."""

    def __init__(
        self,
        settings: CollectorSettings,
        logger: ExposureLogger,
        *,
        limiter: TokenBucketLimiter | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.logger = logger
        self.limiter = limiter or TokenBucketLimiter(rate_per_s=settings.rate_per_s, burst=settings.rate_burst)
        self.stats = CollectorStats()
        self._clock = clock
        self._tokens = [t.get_secret_value().encode() for t in settings.tokens]
        self._origins = frozenset(settings.allowed_origins)

    # -- middlewares, outermost first -------------------------------------------------------------
    @web.middleware
    async def cors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Browsers: only allowed origins; preflights answered here, before auth (they carry no token)."""
        origin = request.headers.get("Origin")
        if origin is None:
            return await handler(request)
        if "*" not in self._origins and origin not in self._origins:
            self.stats.forbidden_origin += 1
            return error(403, "origin_not_allowed", f"origin {origin!r} may not send to this collector")
        if request.method == "OPTIONS":
            response: web.StreamResponse = web.Response(status=204, headers=_PREFLIGHT)
        else:
            response = await handler(request)
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = "Retry-After"
        response.headers["Vary"] = "Origin"
        return response

    @web.middleware
    async def errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """aiohttp's HTTP errors as JSON; anything unexpected is logged here and answered with a bare 500."""
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status == 413:
                self.stats.too_large += 1
            code = (exc.reason or "error").lower().replace(" ", "_")
            return error(
                exc.status, code, exc.text or exc.reason, {k: v for k, v in exc.headers.items() if k == "Allow"}
            )
        except Exception:
            log.exception("abstream collector: unexpected error on %s %s", request.method, request.path)
            return error(500, "internal_error", "internal error; the collector's log has the details")

    @web.middleware
    async def guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Rate limit per client (token, else IP), then authenticate; ``/healthz`` is open to probes."""
        if request.path == "/healthz":
            return await handler(request)
        token = self._token_id(request)
        wait = self.limiter.take(token or f"ip:{self._client_ip(request)}")
        if wait > 0:
            self.stats.rate_limited += 1
            retry = str(max(1, math.ceil(wait)))
            return error(429, "rate_limited", f"too many requests; retry after {retry} s", {"Retry-After": retry})
        if token is None and not self.settings.allow_anonymous:
            self.stats.unauthorized += 1
            headers = {"WWW-Authenticate": 'Bearer realm="abstream"'}
            return error(401, "unauthorized", "send Authorization: Bearer <token> (or ?token= for sendBeacon)", headers)
        return await handler(request)

    def _token_id(self, request: web.Request) -> str | None:
        """``token:<i>`` for the configured token the request carries, else None (compared in constant time)."""
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        candidate = given.strip() if scheme.lower() == "bearer" else request.query.get("token", "")
        found = None
        for i, token in enumerate(self._tokens):
            if hmac.compare_digest(candidate.encode(), token):
                found = f"token:{i}"
        return found

    def _client_ip(self, request: web.Request) -> str:
        if self.settings.trust_forwarded_for and (forwarded := request.headers.get("X-Forwarded-For")):
            return forwarded.split(",")[0].strip()
        return request.remote or "unknown"

    # -- handlers ---------------------------------------------------------------------------------
    async def batch(self, request: web.Request) -> web.Response:
        """``POST /v1/batch``: validate each record, log the valid ones, report the others by index."""
        limit = self.settings.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            self.stats.too_large += 1
            return error(413, "too_large", f"body of {request.content_length} bytes; at most {limit}")
        if request.content_type not in _CONTENT_TYPES:
            return error(415, "unsupported_media_type", "send JSON (application/json, or text/plain for sendBeacon)")
        received = datetime.fromtimestamp(self._clock(), UTC)
        try:
            parsed = parse_batch(
                json.loads(await request.read()), received=received, new_id=new_event_id,
                source=self.logger.source.as_record(), max_records=self.settings.max_batch_records,
            )  # fmt: skip
        except (ValueError, RecursionError) as exc:
            return self._bad_request(exc)
        try:
            accepted, rejected = self._log(parsed)
        except LoggerClosedError:
            return error(503, "shutting_down", "the collector is shutting down; retry shortly", {"Retry-After": "1"})
        self.stats.accepted += accepted
        self.stats.rejected += len(rejected)
        return web.json_response({"accepted": accepted, "rejected": [r.as_json() for r in rejected]})

    def _bad_request(self, exc: Exception) -> web.Response:
        if isinstance(exc, BatchTooLargeError):
            self.stats.too_large += 1
            return error(413, "too_large", str(exc))
        self.stats.bad_requests += 1
        if isinstance(exc, InvalidRecordError):
            return error(400, "invalid_batch", str(exc))
        return error(400, "invalid_json", "the body is not valid JSON (UTF-8)")

    def _log(self, parsed: Batch) -> tuple[int, list[Rejected]]:
        """Hand the valid records to the logger; returns how many it took and every rejection, in order."""
        rejected = list(parsed.rejected)
        for kind, index, record in parsed.valid:
            try:
                log_record(self.logger, record)
            except InvalidRecordError as exc:  # valid by the models but not to the logger (e.g. a time before 1970)
                rejected.append(Rejected(index, kind, (FieldError(exc.field or "", str(exc)),)))
        rejected.sort(key=lambda r: (r.kind != "exposure", r.index))
        return len(parsed.valid) - (len(rejected) - len(parsed.rejected)), rejected

    async def healthz(self, request: web.Request) -> web.Response:
        """``GET /healthz``: always 200 while serving; ``status`` says whether Kafka takes records right now."""
        kafka = self.logger.kafka_available
        return web.json_response(
            {
                "status": "ok" if kafka else "degraded",
                "kafka_available": kafka,
                "spool_pending": self.logger.spooled_pending,
                "logger": asdict(self.logger.stats),
                "requests": asdict(self.stats),
            }
        )


COLLECTOR_KEY = web.AppKey("collector", Collector)


def make_app(settings: CollectorSettings, logger: ExposureLogger, **kwargs: Any) -> web.Application:
    """The aiohttp application; ``kwargs`` go to :class:`Collector` (``limiter``, ``clock``).

    The app does not own ``logger``: whoever made it closes it (``serve`` does, on cleanup).
    """
    collector = Collector(settings, logger, **kwargs)
    app = web.Application(
        middlewares=[collector.cors, collector.errors, collector.guard],
        client_max_size=settings.max_body_bytes,
    )
    app[COLLECTOR_KEY] = collector
    app.router.add_post("/v1/batch", collector.batch)
    app.router.add_get("/healthz", collector.healthz)
    return app


def serve(
    settings: CollectorSettings,
    *,
    bootstrap_servers: str,
    topic_prefix: str,
    spool_dir: Path,
    print_fn: Callable[..., None] | None = print,
) -> None:
    """Run the collector until interrupted; its logger is closed (Kafka flushed, rest spooled) on the way out."""
    logger = ExposureLogger(
        bootstrap_servers=bootstrap_servers,
        spool_dir=spool_dir,
        topic_prefix=topic_prefix,
        source=Source(sdk="abstream-collector"),
    )
    try:
        app = make_app(settings, logger)

        async def close_logger(_app: web.Application) -> None:
            await asyncio.to_thread(logger.close)

        app.on_cleanup.append(close_logger)
        web.run_app(app, host=settings.host, port=settings.port, print=print_fn)
    finally:
        logger.close()
