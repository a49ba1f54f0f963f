"""Done when: after a mixed run through gunicorn (OpenAI and Azure, streamed and not, a
fallback, failures), the cost headers, the stream usage chunks, the ledger rows, /spend/*
and the dashboard all agree with costs worked out here from the registry's prices."""
from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import openai
import pytest
import urllib3

from tests.emulators.openai import openai_error
from tests.emulators.server import Fault
from tests.test_dashboard import bars, chromium, tile
from tests.test_ledger_gunicorn import spend_when

PRICES = json.loads((Path(__file__).resolve().parents[1] / "app/registry/models.json")
                    .read_text())["models"]
AZURE = "azure/gpt4o-prod"     # an Azure deployment of gpt-4o, priced as the registry's gpt-4o
EXACT = Decimal("1e-12")       # the cost header's precision
CENT = Decimal("0.01")


def unit_prices(model: str) -> tuple[Decimal, Decimal]:
    registry = PRICES["gpt-4o" if model == AZURE else model]
    return (Decimal(repr(registry["input_cost_per_token"])),
            Decimal(repr(registry["output_cost_per_token"])))


def by_hand(model: str, prompt: int, completion: int) -> Decimal:
    price_in, price_out = unit_prices(model)
    return prompt * price_in + completion * price_out


@pytest.fixture
def proxy(start_gunicorn, provider_env, write_config, tmp_path):
    price_in, price_out = unit_prices(AZURE)
    config = write_config(f"""
model_list:
  - model_name: azure-4o
    params: {{model: {AZURE}, input_cost_per_token: {price_in}, output_cost_per_token: {price_out}}}
ledger: {{flush_interval: 0.05}}
""")
    return start_gunicorn({**provider_env, "SWITCHBOARD_CONFIG": config,
                           "SWITCHBOARD_DATA_DIR": str(tmp_path / "data")})


class Run:
    """Sends requests and notes what each one cost by hand: request id -> (model, Decimal)."""

    def __init__(self, proxy):
        self.client = openai.OpenAI(base_url=f"{proxy.base_url}/v1", api_key="unused",
                                    max_retries=0)
        self.expected: dict[str, tuple[str, Decimal]] = {}
        self.failed: dict[str, int] = {}

    def plain(self, request_id: str, model: str, answered_by: str, **extra) -> None:
        raw = self.client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": f"this is {request_id}"}],
            extra_headers={"x-request-id": request_id}, **extra)
        usage = raw.parse().usage
        cost = by_hand(answered_by, usage.prompt_tokens, usage.completion_tokens)
        assert abs(Decimal(raw.headers["x-switchboard-cost"]) - cost) <= EXACT
        self.expected[request_id] = (answered_by, cost)

    def stream(self, request_id: str, model: str, answered_by: str, **extra) -> None:
        chunks = list(self.client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": f"streaming {request_id}"}],
            stream=True, stream_options={"include_usage": True},
            extra_headers={"x-request-id": request_id}, **extra))
        usage = chunks[-1].usage
        cost = by_hand(answered_by, usage.prompt_tokens, usage.completion_tokens)
        assert abs(Decimal(repr(usage.cost)) - cost) <= EXACT
        self.expected[request_id] = (answered_by, cost)

    def failing(self, request_id: str, status: int, **body) -> None:
        with pytest.raises(openai.APIStatusError) as info:
            self.client.chat.completions.create(**{
                "model": "gpt-4", "messages": [{"role": "user", "content": "x"}], **body},
                extra_headers={"x-request-id": request_id})
        assert info.value.status_code == status
        self.failed[request_id] = status


def test_headers_ledger_api_and_dashboard_agree(proxy, openai_emu, tmp_path):
    run = Run(proxy)
    run.plain("openai-1", "gpt-4", "gpt-4", user="alice")
    run.plain("openai-2", "gpt-4o", "gpt-4o", user="bob")
    run.stream("openai-stream", "gpt-4o", "gpt-4o", user="alice")
    run.plain("azure-1", "azure-4o", AZURE, user="carol")
    run.stream("azure-stream", "azure-4o", AZURE, user="bob")
    openai_emu.fail_next(Fault(reply=openai_error(500, "gpt-4 is down", "server_error")))
    run.plain("fallback", "gpt-4", AZURE, user="alice",
              extra_body={"num_retries": 0, "fallbacks": ["azure-4o"]})
    run.failing("unknown-model", 404, model="no-such-model")
    run.failing("bad-input", 400, temperature=9)
    openai_emu.fail_next(Fault(reply=openai_error(500, "still down", "server_error"), times=3))
    run.failing("upstream-down", 502, extra_body={"num_retries": 0})

    requests = len(run.expected) + len(run.failed)
    total = sum(cost for _, cost in run.expected.values())
    today = datetime.now(timezone.utc).date()
    window = {"start": str(today - timedelta(days=1)), "end": str(today + timedelta(days=1))}
    http = urllib3.PoolManager()

    def api(path: str, **params):
        r = http.request("GET", f"{proxy.base_url}{path}", fields={**window, **params})
        assert r.status == 200, r.data
        return r.json()

    # the ledger: one row per request, each with its cost
    totals = spend_when(proxy, requests)
    rows = {row["request_id"]: row for row in api("/spend/logs")["data"]}
    assert set(rows) == set(run.expected) | set(run.failed)
    for request_id, (model, cost) in run.expected.items():
        assert rows[request_id]["model"] == model and rows[request_id]["status"] == 200
        assert abs(Decimal(repr(rows[request_id]["cost"])) - cost) <= EXACT, request_id
    for request_id, status in run.failed.items():
        assert (rows[request_id]["status"], rows[request_id]["cost"]) == (status, 0)
    fallback = rows["fallback"]
    assert (fallback["provider"], fallback["fallbacks"], fallback["attempts"]) == ("azure", 1, 2)
    assert [a["status"] for a in fallback["attempts_detail"]] == [502, 200]

    # /spend/*: totals, per model, per user, per day, CSV
    assert (totals["requests"], totals["errors"]) == (requests, 3)
    assert abs(Decimal(repr(totals["cost"])) - total) <= EXACT
    per_model: dict[str, Decimal] = {}
    for model, cost in run.expected.values():
        per_model[model] = per_model.get(model, Decimal(0)) + cost
    models = {m["model"]: m for m in api("/spend/models")["data"]}
    for model, cost in per_model.items():
        assert abs(Decimal(repr(models[model]["cost"])) - cost) <= EXACT, model
    assert (models["gpt-4"]["requests"], models["gpt-4"]["errors"]) == (3, 2)
    assert models["no-such-model"]["errors"] == 1
    users = {u["user"]: Decimal(repr(u["cost"])) for u in api("/spend/users")["data"]}
    alice = sum(run.expected[r][1] for r in ("openai-1", "openai-stream", "fallback"))
    assert abs(users["alice"] - alice) <= EXACT
    day = api("/spend/daily")["data"][0]
    assert day["date"] == str(today) and abs(Decimal(repr(day["cost"])) - total) <= EXACT
    sheet = http.request("GET", f"{proxy.base_url}/spend", fields={"format": "csv", **window})
    assert abs(Decimal(next(csv.DictReader(io.StringIO(sheet.data.decode())))["cost"]) - total) \
        <= EXACT

    # the dashboard, in Chromium
    dom = chromium(f"{proxy.base_url}/dashboard?start={window['start']}&end={window['end']}",
                   tmp_path)
    shown, text = tile(dom, "cost")
    assert abs(Decimal(repr(shown)) - total) <= EXACT
    assert text == "$" + re.sub("0{1,4}$", "", f"{total:.6f}")     # under $1: six places
    assert Decimal(text[1:]).quantize(CENT) == total.quantize(CENT)
    assert tile(dom, "requests")[0] == requests and tile(dom, "errors")[0] == 3
    drawn = bars(dom, keys=("day", "model"))
    assert set(drawn) == {(str(today), model) for model in per_model}
    for (_, model), value in drawn.items():
        assert abs(Decimal(repr(value)) - per_model[model]) <= EXACT, model
