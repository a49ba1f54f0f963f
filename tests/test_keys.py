"""Virtual keys through the HTTP API: the admin endpoints, and each key held to its models,
budget and rate limits (counters in SQL, or in Redis when REDIS_URL is set)."""
from __future__ import annotations

import sqlite3
import time
from datetime import datetime

import pytest

from app.config import ConfigError
from tests.servers import free_port
from tests.keys_fixtures import ADMIN, MODEL, ask, bearer, fresh_window, generate, ledger_rows
from tests.keys_fixtures import keyed  # noqa: F401  (the fixture)


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def limited(request, keyed):
    """A proxy whose counters live in SQLite, in PostgreSQL, or in Redis."""
    env = {}
    if request.param == "postgres":
        env["DATABASE_URL"] = request.getfixturevalue("postgres_url")
    if request.param == "redis":
        env["REDIS_URL"] = request.getfixturevalue("redis_url")
    return keyed(env)


def test_generate_returns_the_key_once_and_stores_only_its_hash(keyed, tmp_path):
    client = keyed()
    made = generate(client, alias="team-a", models=[MODEL], metadata={"team": "a"})
    key, key_id = made["key"], made["key_id"]
    assert key.startswith("sk-sb-") and key_id in key
    info = client.get("/key/info", query_string={"key_id": key_id}, headers=ADMIN).json
    listed = client.get("/key/list", headers=ADMIN).json["keys"]
    for shown in (info, *listed):
        assert "key" not in shown and key not in str(shown)
    assert info["alias"] == "team-a" and info["metadata"] == {"team": "a"}
    assert [k["key_id"] for k in listed] == [key_id]
    # The database holds a hash, never the key.
    dump = "\n".join(sqlite3.connect(tmp_path / "data" / "switchboard.db").iterdump())
    assert key_id in dump and key not in dump and key.split("_", 1)[1] not in dump
    # Looking the key up by the key itself works too: in the body or a header, never the URL.
    for by_key in (client.get("/key/info", json={"key": key}, headers=ADMIN),
                   client.post("/key/info", json={"key": key}, headers=ADMIN),
                   client.get("/key/info", headers={**ADMIN, "x-switchboard-key": key})):
        assert by_key.status_code == 200 and by_key.json["key_id"] == key_id
    in_url = client.get("/key/info", query_string={"key": key}, headers=ADMIN)
    assert in_url.status_code == 400 and in_url.json["error"]["code"] == "key_in_url"
    assert key not in in_url.get_data(as_text=True)


def test_a_key_calls_and_its_requests_carry_its_id_never_the_key(keyed, openai_emu):
    client = keyed()
    made = generate(client, alias="team-b")
    reply = client.post("/v1/chat/completions", json=ask("hello key"), headers=bearer(made["key"]))
    assert reply.status_code == 200
    assert reply.json["choices"][0]["message"]["content"] == "Hello! You said: hello key"
    rows = ledger_rows(client, made["key_id"])
    assert [(r["key_id"], r["key_alias"]) for r in rows] == [(made["key_id"], "team-b")]
    assert made["key"] not in str(rows)
    # The upstream never sees our key: it gets the provider's.
    assert openai_emu.calls[-1].headers["authorization"] == f"Bearer {openai_emu.api_key}"


def test_update_and_delete_take_effect_at_once(keyed):
    client = keyed()
    made = generate(client, rpm_limit=5)
    updated = client.post("/key/update", json={"key_id": made["key_id"], "rpm_limit": None,
                                               "models": ["gpt-4o"], "alias": "renamed"},
                          headers=ADMIN)
    assert updated.status_code == 200
    assert (updated.json["rpm_limit"], updated.json["models"], updated.json["alias"]) == (
        None, ["gpt-4o"], "renamed")
    refused = client.post("/chat/completions", json=ask(), headers=bearer(made["key"]))
    assert refused.status_code == 403 and refused.json["error"]["code"] == "model_not_allowed"
    deleted = client.post("/key/delete", json={"key_ids": [made["key_id"]]}, headers=ADMIN)
    assert deleted.json == {"deleted": [made["key_id"]]}
    after = client.post("/chat/completions", json=ask(model="gpt-4o"), headers=bearer(made["key"]))
    assert after.status_code == 401 and after.json["error"]["code"] == "invalid_api_key"
    missing = client.get("/key/info", query_string={"key_id": made["key_id"]}, headers=ADMIN)
    assert missing.status_code == 404 and missing.json["error"]["code"] == "key_not_found"
    again = client.post("/key/delete", json={"key_id": made["key_id"]}, headers=ADMIN)
    assert again.status_code == 404


@pytest.mark.parametrize("body, param", [
    ({"max_budget": "5"}, "max_budget"),
    ({"max_budget": -1}, "max_budget"),
    ({"rpm_limit": 1.5}, "rpm_limit"),
    ({"rpm_limit": True}, "rpm_limit"),
    ({"budget_duration": "30 days"}, "budget_duration"),
    ({"budget_duration": "0d"}, "budget_duration"),
    ({"expires": "next tuesday"}, "expires"),
    ({"models": "gpt-4o"}, "models"),
    ({"models": [""]}, "models[0]"),
    ({"metadata": [1]}, "metadata"),
    ({"alias": "x" * 300}, "alias"),
    ({"key": "sk-sb-chosen-by-me"}, "key"),
    ({"spend": 0}, "spend"),
])
def test_generate_refuses_bad_settings_naming_the_field(keyed, body, param):
    response = keyed().post("/key/generate", json=body, headers=ADMIN)
    assert response.status_code == 400, response.json
    assert response.json["error"]["param"] == param


def test_admin_endpoints_refuse_bad_input(keyed):
    client = keyed()
    assert client.get("/key/info", headers=ADMIN).status_code == 400
    assert client.post("/key/info", json={"key": "sk-sb-nonsense"},
                       headers=ADMIN).status_code == 404
    assert client.post("/key/info", json={"key": 5}, headers=ADMIN).status_code == 400
    assert client.post("/key/info", json={"secret": "x"}, headers=ADMIN).status_code == 400
    for limit in ("0", "-1", "abc", "²", "99999"):
        response = client.get("/key/list", query_string={"limit": limit}, headers=ADMIN)
        assert response.status_code == 400, limit
    assert client.post("/key/update", json={"rpm_limit": 3}, headers=ADMIN).status_code == 400
    assert client.post("/key/update", json={"key_id": "nope", "rpm_limit": 3},
                       headers=ADMIN).status_code == 404
    assert client.post("/key/delete", json={}, headers=ADMIN).status_code == 400
    assert client.post("/key/generate", data="[]", content_type="application/json",
                       headers=ADMIN).status_code == 400


def test_sql_metacharacters_in_alias_and_metadata_are_plain_text(keyed):
    client = keyed()
    hostile = "x'); DROP TABLE api_keys; --"
    metadata = {"note": "' OR '1'='1", "nested": {"q": "\"; DELETE FROM ledger; --"},
                hostile: "%_\\?"}
    made = generate(client, alias=hostile, metadata=metadata)
    info = client.get("/key/info", query_string={"key_id": made["key_id"]}, headers=ADMIN).json
    assert info["alias"] == hostile and info["metadata"] == metadata
    generate(client, alias="second")
    assert len(client.get("/key/list", headers=ADMIN).json["keys"]) == 2
    reply = client.post("/chat/completions", json=ask(), headers=bearer(made["key"]))
    assert reply.status_code == 200


def test_models_outside_the_allow_list_are_refused_and_recorded(keyed):
    client = keyed()
    made = generate(client, models=[MODEL])
    headers = bearer(made["key"])
    refused = client.post("/chat/completions", json=ask(model="gpt-4o"), headers=headers)
    assert refused.status_code == 403
    assert refused.json["error"]["code"] == "model_not_allowed"
    # A per-request fallback may not reach past the list either.
    sneaky = client.post("/chat/completions", json=ask(fallbacks=["gpt-4o"]), headers=headers)
    assert sneaky.status_code == 403
    assert client.post("/chat/completions", json=ask(), headers=headers).status_code == 200
    listed = client.get("/v1/models", headers=headers).json["data"]
    assert [m["id"] for m in listed] == [MODEL]
    codes = sorted(r["error_code"] or "ok" for r in ledger_rows(client, made["key_id"]))
    assert codes == ["model_not_allowed", "model_not_allowed", "ok"]


def test_expired_keys_are_refused(keyed):
    client = keyed()
    past = generate(client, expires="2020-01-01T00:00:00Z")
    soon = generate(client, expires="1s")
    response = client.post("/chat/completions", json=ask(), headers=bearer(past["key"]))
    assert response.status_code == 401 and response.json["error"]["code"] == "key_expired"
    assert [r["error_code"] for r in ledger_rows(client, past["key_id"])] == ["key_expired"]
    headers = bearer(soon["key"])
    assert client.post("/chat/completions", json=ask(), headers=headers).status_code == 200
    time.sleep(1.1)
    assert client.post("/chat/completions", json=ask(), headers=headers).status_code == 401


def test_budget_refuses_once_spent_and_resets_on_its_duration(keyed):
    client = keyed()
    budget = 0.00001  # a few requests of gpt-4o-mini
    # the first completion of a process loads the tokenizer: not inside the budget period
    assert client.post("/chat/completions", json=ask(), headers=ADMIN).status_code == 200
    made = generate(client, max_budget=budget, budget_duration="5s")  # > the loop, loaded
    headers = bearer(made["key"])
    costs = []
    for _ in range(20):  # max_tokens: the reply to "hi" is 4 tokens
        reply = client.post("/chat/completions", json=ask(max_tokens=4), headers=headers)
        if reply.status_code != 200:
            break
        costs.append(float(reply.headers["x-switchboard-cost"]))
    assert reply.status_code == 429 and costs
    error = reply.json["error"]
    assert error["code"] == "budget_exceeded" and error["type"] == "insufficient_quota"
    spend = client.get("/key/info", query_string={"key_id": made["key_id"]}, headers=ADMIN).json
    assert spend["spend"] == pytest.approx(sum(costs))
    assert budget - max(costs) <= spend["spend"] <= budget + max(costs)
    assert f"spend ${spend['spend']:.6f}" in error["message"]
    assert f"max_budget ${budget:.6f}" in error["message"]
    assert int(reply.headers["Retry-After"]) >= 1
    reset_at = datetime.fromisoformat(made["budget_reset_at"].replace("Z", "+00:00"))
    time.sleep(max(0.0, reset_at.timestamp() - time.time()) + 0.1)
    assert client.post("/chat/completions", json=ask(max_tokens=4),
                       headers=headers).status_code == 200
    info = client.get("/key/info", query_string={"key_id": made["key_id"]}, headers=ADMIN).json
    assert info["spend"] == pytest.approx(costs[0])


def test_rpm_limit_with_openai_headers(limited):
    made = generate(limited, rpm_limit=3)
    headers = bearer(made["key"])
    fresh_window(5)
    replies = [limited.post("/chat/completions", json=ask(), headers=headers) for _ in range(4)]
    assert [r.status_code for r in replies] == [200, 200, 200, 429]
    assert [r.headers["x-ratelimit-remaining-requests"] for r in replies] == ["2", "1", "0", "0"]
    assert all(r.headers["x-ratelimit-limit-requests"] == "3" for r in replies)
    refused = replies[-1]
    assert refused.json["error"]["code"] == "rate_limit_exceeded"
    assert refused.json["error"]["type"] == "requests"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # Other endpoints show the key's state too, without counting.
    models = limited.get("/v1/models", headers=headers)
    assert models.headers["x-ratelimit-remaining-requests"] == "0"
    codes = sorted(r["error_code"] or "" for r in ledger_rows(limited, made["key_id"]))
    assert codes == ["", "", "", "rate_limit_exceeded"]  # the refusal is recorded too


def test_tpm_counts_the_prompt_before_and_real_usage_after(limited):
    made = generate(limited, tpm_limit=60)
    headers = bearer(made["key"])
    fresh_window(5)
    first = limited.post("/chat/completions", json=ask("one two three"), headers=headers)
    assert first.status_code == 200
    # The emulator's own usage (one word, one token) replaces the estimate after the call.
    used = first.json["usage"]["total_tokens"]
    after = limited.get("/v1/models", headers=headers)
    assert after.headers["x-ratelimit-remaining-tokens"] == str(60 - used)
    too_long = limited.post("/chat/completions", json=ask("word " * 80), headers=headers)
    assert too_long.status_code == 429
    assert too_long.json["error"]["type"] == "tokens"
    assert too_long.headers["x-ratelimit-limit-tokens"] == "60"


def test_max_parallel_requests_counts_open_streams(limited):
    made = generate(limited, max_parallel_requests=1)
    headers = bearer(made["key"])
    stream = limited.post("/chat/completions", json=ask(stream=True), headers=headers,
                          buffered=False)
    assert stream.status_code == 200
    busy = limited.post("/chat/completions", json=ask(), headers=headers)
    assert busy.status_code == 429 and busy.headers["Retry-After"] == "1"
    assert "max_parallel_requests" in busy.json["error"]["message"]
    body = b"".join(stream.response)
    stream.close()
    assert body.endswith(b"data: [DONE]\n\n")
    assert limited.post("/chat/completions", json=ask(), headers=headers).status_code == 200
    assert limited.post("/chat/completions", json=ask(), headers=headers).status_code == 200


def test_a_refused_request_frees_what_it_reserved(limited):
    """Budget reserved, then the rate limit refuses: the reservation is given back."""
    made = generate(limited, rpm_limit=1, max_budget=1.0)
    headers = bearer(made["key"])
    fresh_window(5)
    assert limited.post("/chat/completions", json=ask(), headers=headers).status_code == 200
    for _ in range(3):
        assert limited.post("/chat/completions", json=ask(), headers=headers).status_code == 429
    database = limited.application.extensions["switchboard.keys"].store.db
    assert database.query("SELECT COUNT(*) FROM api_key_leases") == [(0,)]


def test_an_unreachable_redis_serves_without_rate_limits(keyed, caplog):
    client = keyed({"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    made = generate(client, rpm_limit=1, max_budget=1.0)
    replies = [client.post("/chat/completions", json=ask(), headers=bearer(made["key"]))
               for _ in range(3)]
    assert [r.status_code for r in replies] == [200, 200, 200]
    assert "served without its limits" in caplog.text
    spend = client.get("/key/info", query_string={"key_id": made["key_id"]}, headers=ADMIN)
    assert spend.json["spend"] > 0  # budgets live in the database and still count


def test_a_master_key_clients_cannot_send_stops_the_start(keyed):
    with pytest.raises(ConfigError, match="SWITCHBOARD_MASTER_KEY"):
        keyed(master="two words")


def test_the_budget_reserves_every_billed_choice(keyed):
    """n choices and best_of candidates are all billed: each is reserved in full."""
    client = keyed()
    made = generate(client, max_budget=0.001)  # gpt-4o-mini output: $0.6 per million tokens
    headers = bearer(made["key"])
    assert client.post("/v1/chat/completions", json=ask(max_tokens=500),
                       headers=headers).status_code == 200
    refused = client.post("/v1/chat/completions", json=ask(max_tokens=500, n=8),
                          headers=headers)  # 8 x 500 tokens: $0.0024
    assert refused.status_code == 429 and refused.json["error"]["code"] == "budget_exceeded"
    text = {"model": "gpt-3.5-turbo-instruct", "prompt": "hi", "max_tokens": 100}
    assert client.post("/v1/completions", json=text, headers=headers).status_code == 200
    best = client.post("/v1/completions", json={**text, "best_of": 20}, headers=headers)
    assert best.status_code == 429 and best.json["error"]["code"] == "budget_exceeded"
