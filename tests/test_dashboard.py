"""GET /dashboard in a real headless Chromium: a seeded ledger's numbers appear in the charts
(one bar per day and model, tiles, latency, top users), names render as text, nothing is
fetched from outside the proxy; a screenshot is kept in test-artifacts/."""
from __future__ import annotations

import re
import shutil
import subprocess
import threading
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from app.api import create_app
from app.config import load_settings
from app.service.completion import CompletionService
from tests.test_ledger import make_event

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
STATIC = ROOT / "app/api/static/dashboard"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}
EVIL = '<img src=x onerror="document.title=1">'


class Dom(HTMLParser):
    """The elements of a dumped page: tag, attributes, children and text content."""

    def __init__(self, html: str):
        super().__init__()
        self.elements: list[dict] = []
        self._open: list[dict] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        element = {"tag": tag, "attrs": dict(attrs), "text": "", "children": []}
        if self._open:
            self._open[-1]["children"].append(element)
        self.elements.append(element)
        if tag not in VOID:
            self._open.append(element)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self._open.pop()

    def handle_endtag(self, tag):
        while self._open:
            if self._open.pop()["tag"] == tag:
                break

    def handle_data(self, data):
        for element in self._open:
            element["text"] += data

    def find(self, tag: str, **attrs) -> list[dict]:
        return [e for e in self.elements if e["tag"] == tag
                and all(e["attrs"].get(k.replace("_", "-")) == v for k, v in attrs.items())]


def chromium(url: str, workdir: Path, screenshot: Path | None = None) -> Dom:
    """The page's DOM once its scripts have run; a screenshot too when asked."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        print("chromium is not installed: skipping (make test installs Debian's chromium)")
        pytest.skip("chromium is not installed (make test installs Debian's chromium)")
    args = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={workdir / 'chromium-profile'}",
            "--virtual-time-budget=15000", "--window-size=1280,1250"]
    dumped = subprocess.run([*args, "--dump-dom", url], capture_output=True, text=True,
                            timeout=90, check=True).stdout
    if screenshot is not None:
        screenshot.parent.mkdir(exist_ok=True)
        subprocess.run([*args, f"--screenshot={screenshot}", url], capture_output=True,
                       timeout=90, check=True)
        assert screenshot.stat().st_size > 10_000
    dom = Dom(dumped)
    body = dom.find("body")[0]["attrs"]
    assert body.get("data-state") == "ready", dom.find("p", id="status")[0]["text"]
    return dom


def tile(dom: Dom, metric: str) -> tuple[float, str]:
    """A total's exact value (data-value) and the text the page shows for it."""
    element = dom.find("div", data_metric=metric)[0]
    shown = next(c for c in element["children"] if c["attrs"].get("class") == "value")
    return float(element["attrs"]["data-value"]), shown["text"]


def table(dom: Dom, key: str) -> list[list[str]]:
    """The rows of a table whose rows carry data-<key>: their cells' text."""
    return [[cell["text"] for cell in row["children"]] for row in dom.find("tr")
            if f"data-{key}" in row["attrs"]]


def bars(dom: Dom, **attrs) -> dict[tuple, float]:
    """rect elements keyed by the attributes named, value = data-value."""
    return {tuple(r["attrs"][f"data-{k}"] for k in attrs["keys"]): float(r["attrs"]["data-value"])
            for r in dom.find("rect") if all(f"data-{k}" in r["attrs"] for k in attrs["keys"])
            and all(r["attrs"].get(f"data-{k}") == v for k, v in attrs.get("where", {}).items())}


@pytest.fixture
def serve(provider_env, tmp_path):
    """The proxy app served over HTTP on loopback, for the browser: (service, base URL)."""
    servers = []

    def start(env: dict | None = None):
        settings = load_settings({**provider_env, "SWITCHBOARD_DATA_DIR": str(tmp_path / "data"),
                                  **(env or {})})
        service = CompletionService(settings)
        server = make_server("127.0.0.1", 0, create_app(service), threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return service, f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.shutdown()


def at(day: int, hour: int) -> float:
    return datetime(2025, 3, day, hour, tzinfo=timezone.utc).timestamp()


# (day, model, user, prompt, completion, cost, latency ms, extra)
SEED = [
    (1, "gpt-4", "alice", 1000, 200, 12.5, 400.0, {}),
    (1, "gpt-4", "alice", 500, 100, 6.25, 600.0, {}),
    (1, "claude-sonnet-4-5", "bob", 800, 300, 3.75, 900.0, {"provider": "anthropic"}),
    (2, "gpt-4", EVIL, 300, 50, 2.5, 500.0, {}),
    (2, "gpt-4", "bob", 0, 0, 0.0, 50.0, {"status": 502, "error_type": "upstream_error"}),
    (3, "claude-sonnet-4-5", "alice", 400, 100, 1.25, 800.0, {"provider": "anthropic"}),
    (3, "gpt-4", "bob", 1000, 200, 0.0, 5.0, {"cache": "hit", "saved_cost": 12.5}),
    (3, "gpt-4", "bob", 1000, 200, 12.5, 700.0, {"cache": "miss"}),
]


def test_dashboard_renders_the_seeded_ledger(serve, tmp_path):
    service, base = serve()
    for n, (day, model, user, prompt, completion, cost, latency, extra) in enumerate(SEED):
        service.events.publish(make_event(**{
            "started_at": at(day, 8 + n), "model": model, "requested_model": model, "user": user,
            "prompt_tokens": prompt, "completion_tokens": completion, "cost": cost,
            "latency_ms": latency, **extra}))
    dom = chromium(f"{base}/dashboard?start=2025-03-01&end=2025-03-07", tmp_path,
                   ARTIFACTS / "dashboard.png")

    assert tile(dom, "cost") == (38.75, "$38.75")
    assert tile(dom, "requests") == (8, "8")
    assert tile(dom, "errors") == (1, "1")
    assert tile(dom, "prompt_tokens") == (5000, "5,000")
    assert tile(dom, "completion_tokens") == (1150, "1,150")
    assert tile(dom, "cache_hit_rate") == (0.5, "50.0%")
    assert tile(dom, "saved_cost") == (12.5, "$12.50")

    # spend per day stacked by model: one bar per (day, model) that cost anything
    assert bars(dom, keys=("day", "model")) == {
        ("2025-03-01", "gpt-4"): 18.75, ("2025-03-01", "claude-sonnet-4-5"): 3.75,
        ("2025-03-02", "gpt-4"): 2.5,
        ("2025-03-03", "gpt-4"): 12.5, ("2025-03-03", "claude-sonnet-4-5"): 1.25}
    assert bars(dom, keys=("day",), where={"series": "in"}) == {
        ("2025-03-01",): 2300, ("2025-03-02",): 300, ("2025-03-03",): 2400}
    assert bars(dom, keys=("day",), where={"series": "out"}) == {
        ("2025-03-01",): 600, ("2025-03-02",): 50, ("2025-03-03",): 500}
    assert bars(dom, keys=("day",), where={"series": "requests"}) == {
        ("2025-03-01",): 3, ("2025-03-02",): 2, ("2025-03-03",): 3}
    assert bars(dom, keys=("day",), where={"series": "errors"}) == {
        ("2025-03-01",): 0, ("2025-03-02",): 1, ("2025-03-03",): 0}
    # nearest-rank percentiles of answered, uncached requests: gpt-4 400, 500, 600, 700 ms
    assert bars(dom, keys=("model", "percentile")) == {
        ("gpt-4", "p50"): 500.0, ("gpt-4", "p95"): 700.0,
        ("claude-sonnet-4-5", "p50"): 800.0, ("claude-sonnet-4-5", "p95"): 900.0}

    assert table(dom, "user") == [["alice", "3", "1,900", "400", "$20.00"],
                                  ["bob", "4", "2,800", "700", "$16.25"],
                                  [EVIL, "1", "300", "50", "$2.50"]]
    assert not dom.find("img")       # a client's name is text, never markup
    assert [row[0] for row in table(dom, "model")] == ["gpt-4", "claude-sonnet-4-5"]
    legend = [e["text"] for e in dom.find("span") if "data-model" in e["attrs"]]
    assert legend == ["gpt-4", "claude-sonnet-4-5"]


def test_dashboard_shows_an_api_error(serve, tmp_path):
    _, base = serve()
    with pytest.raises(AssertionError, match="Could not load spend: /spend[a-z/]*: Invalid "
                                             "parameter 'start'"):
        chromium(f"{base}/dashboard?start=2025-02-30&end=2025-03-07", tmp_path)


def test_dashboard_behind_the_master_key(serve, tmp_path):
    service, base = serve({"SWITCHBOARD_MASTER_KEY": "sk-master-for-the-dashboard"})
    service.events.publish(make_event(started_at=at(1, 9), cost=4.5))
    page = f"{base}/dashboard?start=2025-03-01&end=2025-03-01"
    with pytest.raises(AssertionError, match="needs its master key"):
        chromium(page, tmp_path)                    # no key: asked for, nothing shown
    dom = chromium(page + "#key=sk-master-for-the-dashboard", tmp_path)
    assert tile(dom, "cost") == (4.5, "$4.50")


def test_page_and_assets_stay_on_this_origin(make_client, tmp_path):
    client = make_client(env={"SWITCHBOARD_DATA_DIR": str(tmp_path)})
    r = client.get("/dashboard")
    assert r.status_code == 200 and r.mimetype == "text/html"
    assert "default-src 'none'" in r.headers["Content-Security-Policy"]
    for asset in ("dashboard.js", "dashboard.css"):
        assert client.get(f"/dashboard/assets/{asset}").status_code == 200
    for path in STATIC.iterdir():
        urls = set(re.findall(r"https?://[^\s\"')]+", path.read_text()))
        assert urls <= {"http://www.w3.org/2000/svg"}, (path.name, urls)
