"""The dashboard's pages and routes: escaping, no outside resources, and the JSON the script polls."""

from __future__ import annotations

import asyncio
import html
import json
import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from abstream.errors import ReportError
from sinks.dashboard import render_page, static_asset
from sinks.server import build_app

HOSTILE = "</script><script>alert(1)</script>&\"'<b>"


def config_of(page: str) -> dict[str, Any]:
    match = re.search(r'<script id="config" type="application/json">(.*?)</script>', page, re.S)
    assert match is not None
    return dict(json.loads(match.group(1)))


def test_the_key_is_escaped_in_the_markup_and_cannot_leave_the_config_block() -> None:
    page = render_page(experiment=HOSTILE, policy="exclude")

    assert "alert(1)</script>" not in page and "<b>" not in page
    assert f'<h1 id="heading">{html.escape(HOSTILE)}</h1>' in page
    assert page.count("<script") == 2 and page.count("</script>") == 2
    assert config_of(page) == {"experiment": HOSTILE, "policy": "exclude", "root": "../"}


def test_the_index_page_links_its_script_relative_to_the_root() -> None:
    page = render_page(experiment=None, policy="first_seen")

    assert '<script src="./static/dashboard.js"></script>' in page
    assert config_of(page) == {"experiment": None, "policy": "first_seen", "root": "./"}
    assert "<title>Experiments · abstream</title>" in page


@pytest.mark.parametrize("name", ["dashboard.html", "dashboard.js"])
def test_assets_load_nothing_from_outside_and_build_no_markup_from_data(name: str) -> None:
    text = static_asset(name).decode()

    assert re.findall(r"https?://[^\s\"'`]+", text) in ([], ["http://www.w3.org/2000/svg"])
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in text


class FakeDashboard:
    def __init__(self) -> None:
        self.asked: list[tuple[Any, ...]] = []

    def index(self, policy: str) -> dict[str, Any]:
        self.asked.append(("index", policy))
        return {"experiments": [], "policy": policy}

    def experiment(self, key: str, policy: str) -> dict[str, Any]:
        self.asked.append((key, policy))
        if key != "moon_mars":
            raise ReportError(f"no data for experiment {key!r}")
        return {"experiment": key, "policy": policy}


def serve(dashboard: FakeDashboard | None, requests: list[str]) -> list[tuple[int, dict[str, str], str]]:
    """GET each path from the app on a real loopback server; (status, headers, body) each."""

    async def run() -> list[tuple[int, dict[str, str], str]]:
        app = build_app(report=lambda *_: {"experiments": {}}, health=dict, dashboard=dashboard)
        async with TestClient(TestServer(app)) as client:
            out = []
            for path in requests:
                async with client.get(path) as response:
                    out.append((response.status, dict(response.headers), await response.text()))
            return out

    return asyncio.run(run())


def test_the_routes_serve_pages_script_and_json() -> None:
    dashboard = FakeDashboard()

    (index, page, script, data, listing) = serve(
        dashboard, ["/", "/experiments/%3Cb%3Ex", "/static/dashboard.js", "/api/dashboard/moon_mars?policy=first_seen",
                    "/api/dashboard"],
    )  # fmt: skip

    assert index[0] == 200 and index[1]["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in index[1]["Content-Security-Policy"]
    assert page[0] == 200 and "&lt;b&gt;x" in page[2] and "<b>x" not in page[2]
    assert script[0] == 200 and script[1]["Content-Type"].startswith("text/javascript")
    assert (data[0], json.loads(data[2])) == (200, {"experiment": "moon_mars", "policy": "first_seen"})
    assert json.loads(listing[2]) == {"experiments": [], "policy": "exclude"}
    assert dashboard.asked == [("moon_mars", "first_seen"), ("index", "exclude")]


def test_errors_are_json_with_a_message() -> None:
    (unknown, bad_policy, bad_page) = serve(
        FakeDashboard(), ["/api/dashboard/nope", "/api/dashboard/moon_mars?policy=all", "/?policy=all"]
    )

    assert unknown[0] == 404 and json.loads(unknown[2]) == {"error": "no data for experiment 'nope'"}
    assert bad_policy[0] == 400 and "policy must be one of" in json.loads(bad_policy[2])["error"]
    assert bad_page[0] == 400


def test_without_a_dashboard_source_only_the_api_is_served() -> None:
    (index, report) = serve(None, ["/", "/api/report"])

    assert index[0] == 404 and report[0] == 200
