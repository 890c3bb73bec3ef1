"""The HTTP collector end to end: real HTTP in, a real ExposureLogger, records on the real broker."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from confluent_kafka.admin import AdminClient

from deploy.topics import TopicSpec, create_topics
from producers.collector.app import make_app
from producers.collector.settings import CollectorSettings
from producers.logger import ExposureLogger, Source
from schemas.serde import AvroSerde
from tests.integration.test_kafka import consume_all

pytestmark = pytest.mark.integration

TOKEN = "write-key-1"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
EXPOSURE = {"experiment": "moon_mars", "revision": 1, "variant": "Moon", "unit_type": "device_id",
            "scheme": "sha256-weights"}  # fmt: skip


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: dict[str, Any]


@dataclass
class Running:
    """A collector serving on 127.0.0.1:``port`` in a background thread, with its logger and topics."""

    port: int
    logger: ExposureLogger
    bootstrap: str
    prefix: str

    def request(self, method: str, path: str, body: object = None, headers: dict[str, str] | None = None) -> Reply:
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=data, headers=headers or {})
            response = conn.getresponse()
            raw = response.read()
            return Reply(response.status, response.headers, json.loads(raw) if raw else {})
        finally:
            conn.close()

    def post(self, body: object, headers: dict[str, str] | None = None) -> Reply:
        return self.request("POST", "/v1/batch", body, AUTH if headers is None else headers)

    def records(self, kind: str, n: int) -> list[dict[str, Any]]:
        assert self.logger.flush(30)
        messages = consume_all(self.bootstrap, f"{self.prefix}{kind}", n)
        assert len(messages) == n
        serde = AvroSerde("Exposure" if kind == "exposures" else "Event")
        return [serde.decode(m.value()) for m in messages]


def _serve(app: web.Application, started: threading.Event, box: dict[str, Any]) -> None:
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    box["port"], box["loop"] = runner.addresses[0][1], loop
    started.set()
    loop.run_forever()
    loop.run_until_complete(runner.cleanup())
    loop.close()


@pytest.fixture
def collector(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Iterator[Callable[..., Running]]:
    """``collector(**settings)``: start one with those settings (tokens default to TOKEN) on fresh topics."""
    create_topics(
        AdminClient({"bootstrap.servers": kafka_bootstrap}), TopicSpec.load().resolve(prefix=topic_prefix, brokers=1)
    )
    stops: list[Callable[[], None]] = []

    def start(**overrides: Any) -> Running:
        settings = CollectorSettings(**{"tokens": [TOKEN], **overrides})
        logger = ExposureLogger(bootstrap_servers=kafka_bootstrap, spool_dir=tmp_path / f"spool-{len(stops)}",
                                topic_prefix=topic_prefix, source=Source(sdk="abstream-collector"))  # fmt: skip
        started, box = threading.Event(), dict[str, Any]()
        thread = threading.Thread(target=_serve, args=(make_app(settings, logger), started, box), daemon=True)
        thread.start()
        assert started.wait(10)

        def stop() -> None:
            box["loop"].call_soon_threadsafe(box["loop"].stop)
            thread.join(10)
            logger.close()

        stops.append(stop)
        return Running(box["port"], logger, kafka_bootstrap, topic_prefix)

    yield start
    for stop in stops:
        stop()


def test_a_valid_batch_lands_on_kafka_with_received_ts(collector: Callable[..., Running]) -> None:
    running = collector()
    exposures = [{**EXPOSURE, "unit_id": f"d-{i}", "client_ts": 1_700_000_000_000 + i} for i in range(20)]
    web_sdk = {"sdk": "web-sdk", "sdk_version": "2.1.0", "app": "shop", "host": None}
    event = {"unit_type": "device_id", "unit_id": "d-1", "name": "button_click", "properties": {"btn_type": "Moon"},
             "event_id": str(uuid.uuid4()), "ts": "2025-03-01T12:00:00Z", "source": web_sdk}  # fmt: skip
    before = int(time.time() * 1000)
    reply = running.post({"exposures": exposures, "events": [event]})
    after = int(time.time() * 1000)
    assert (reply.status, reply.body) == (200, {"accepted": 21, "rejected": []})

    records = sorted(running.records("exposures", 20), key=lambda r: r["client_ts"])
    for i, r in enumerate(records):
        assert (r["unit_id"], r["variant"], r["experiment"], r["revision"]) == (f"d-{i}", "Moon", "moon_mars", 1)
        assert r["client_ts"] == 1_700_000_000_000 + i
        assert before <= r["received_ts"] <= after
        assert r["source"]["sdk"] == "abstream-collector"
    [got] = running.records("events", 1)
    assert got["event_id"] == event["event_id"] and got["properties"] == {"btn_type": "Moon"}
    assert got["ts"] == 1_740_830_400_000 and before <= got["received_ts"] <= after
    assert got["source"] == web_sdk  # the client's own, as it sent it


def test_bad_records_are_reported_and_the_good_ones_delivered(collector: Callable[..., Running]) -> None:
    running = collector()
    good = [{**EXPOSURE, "unit_id": f"ok-{i}", "event_id": str(uuid.uuid4())} for i in range(3)]
    bad = [{**EXPOSURE, "unit_id": ""}, {**EXPOSURE, "unit_id": "x", "revision": -2, "sampling_rate": 0}]
    reply = running.post({"exposures": [bad[0], good[0], bad[1], good[1], good[2]], "events": [{"name": "click"}]})
    assert reply.status == 200 and reply.body["accepted"] == 3
    rejected = {(r["kind"], r["index"]): sorted(e["field"] for e in r["errors"]) for r in reply.body["rejected"]}
    assert rejected == {
        ("exposure", 0): ["unit_id"],
        ("exposure", 2): ["revision", "sampling_rate"],
        ("event", 0): ["unit_id", "unit_type"],
    }
    assert {r["event_id"] for r in running.records("exposures", 3)} == {g["event_id"] for g in good}


def test_auth_is_required(collector: Callable[..., Running]) -> None:
    running = collector()
    batch = {"exposures": [{**EXPOSURE, "unit_id": "u"}]}
    for headers in ({"Content-Type": "application/json"}, {**AUTH, "Authorization": "Bearer nope"}):
        reply = running.post(batch, headers)
        assert reply.status == 401 and reply.body["error"] == "unauthorized"
        assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    beacon = running.request("POST", f"/v1/batch?token={TOKEN}", batch, {"Content-Type": "text/plain;charset=UTF-8"})
    assert beacon.status == 200 and beacon.body["accepted"] == 1
    anonymous = collector(tokens=[], allow_anonymous=True)
    assert anonymous.post(batch, {"Content-Type": "application/json"}).status == 200


def test_oversized_bodies_and_batches_are_refused(collector: Callable[..., Running]) -> None:
    running = collector(max_body_bytes=2048, max_batch_records=5)
    big = {"exposures": [{**EXPOSURE, "unit_id": "u" * 3000}]}
    reply = running.post(big)
    assert reply.status == 413 and reply.body["error"] == "too_large"
    reply = running.post({"exposures": [{**EXPOSURE, "unit_id": f"u{i}"} for i in range(6)]})
    assert reply.status == 413 and "at most 5 per batch" in reply.body["message"]
    assert running.request("GET", "/healthz").body["requests"]["too_large"] == 2


def test_a_client_past_its_rate_gets_429_with_retry_after(collector: Callable[..., Running]) -> None:
    running = collector(rate_burst=3, rate_per_s=0.2)
    statuses = [running.post({"events": []}).status for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    reply = running.post({"events": []})
    assert reply.status == 429 and reply.body["error"] == "rate_limited"
    assert 1 <= int(reply.headers["Retry-After"]) <= 5
    assert running.request("GET", "/healthz").status == 200  # probes are not limited


def test_cors_lets_allowed_origins_in(collector: Callable[..., Running]) -> None:
    running = collector(allowed_origins=["https://shop.example"])
    preflight = {"Origin": "https://shop.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type"}  # fmt: skip
    reply = running.request("OPTIONS", "/v1/batch", headers=preflight)
    assert reply.status == 204
    assert reply.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert "POST" in reply.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in reply.headers["Access-Control-Allow-Headers"]
    posted = running.post({"events": []}, {**AUTH, "Origin": "https://shop.example"})
    assert posted.status == 200 and posted.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    other = running.request("OPTIONS", "/v1/batch", headers={**preflight, "Origin": "https://evil.example"})
    assert other.status == 403 and other.body["error"] == "origin_not_allowed"
    assert "Access-Control-Allow-Origin" not in other.headers


def test_errors_are_json_without_stack_traces(collector: Callable[..., Running]) -> None:
    running = collector()
    cases = [
        (running.post(b"{not json", AUTH), 400, "invalid_json"),
        (running.post(["a list"]), 400, "invalid_batch"),
        (running.post(b"<x/>", {**AUTH, "Content-Type": "application/xml"}), 415, "unsupported_media_type"),
        (running.post(b"[" * 100_000 + b"]" * 100_000), 400, "invalid_json"),
        (running.request("GET", "/v1/batch", headers=AUTH), 405, "method_not_allowed"),
        (running.request("GET", "/nowhere", headers=AUTH), 404, "not_found"),
    ]
    for reply, status, code in cases:
        assert (reply.status, reply.body["error"]) == (status, code)
        assert "Traceback" not in reply.body["message"]


def test_an_unexpected_failure_is_a_bare_500_and_a_closed_logger_a_503(
    collector: Callable[..., Running], caplog: pytest.LogCaptureFixture
) -> None:
    running = collector()
    batch = {"exposures": [{**EXPOSURE, "unit_id": "u"}]}

    def broken(**fields: object) -> str:
        raise RuntimeError("secret internals")

    running.logger.log_exposure = broken  # type: ignore[method-assign]
    reply = running.post(batch)
    assert (reply.status, reply.body["error"]) == (500, "internal_error")
    assert "secret" not in json.dumps(reply.body) and "secret internals" in caplog.text
    del running.logger.log_exposure
    running.logger.close()
    reply = running.post(batch)
    assert (reply.status, reply.body["error"], reply.headers["Retry-After"]) == (503, "shutting_down", "1")


def test_healthz_reports_kafka_the_spool_and_counters(collector: Callable[..., Running]) -> None:
    running = collector()
    running.post({"exposures": [{**EXPOSURE, "unit_id": "u1"}, {**EXPOSURE, "unit_id": ""}]})
    running.post({}, {"Content-Type": "application/json"})
    assert running.logger.flush(30)
    reply = running.request("GET", "/healthz")
    assert reply.status == 200
    assert reply.body["status"] == "ok" and reply.body["kafka_available"] is True and reply.body["spool_pending"] == 0
    assert reply.body["logger"]["sent"] == 1
    assert {k: reply.body["requests"][k] for k in ("accepted", "rejected", "unauthorized")} == {
        "accepted": 1, "rejected": 1, "unauthorized": 1,
    }  # fmt: skip
