"""Two proxy instances (two workers each) sharing PostgreSQL (DATABASE_URL) and Redis
(REDIS_URL): keys, revocation, rate limits, spend, the ledger, cooldowns and the cache are
one. Each test asks its own question, so the cache never answers for another test."""
from __future__ import annotations

import itertools
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import urllib3

from tests.conftest import GunicornProxy
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.server import Fault, Reply
from tests.keys_fixtures import ADMIN, MASTER, ask, bearer, fresh_window
from tests.servers import fresh_postgres_database

pytestmark = pytest.mark.timeout(180)
CONFIG = """
model_list:
  - model_name: shared-model
    params: {model: openai/gpt-4o-mini}
allowed_fails: 1
cooldown_time: 60
num_retries: 0
cache: {enabled: true, backend: redis}
"""


@pytest.fixture(scope="module")
def instances(emulators, redis_server, postgres_server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("instances")
    config = folder / "switchboard.yaml"
    config.write_text(CONFIG)
    env = {**emulators(OpenAIEmulator).proxy_env(), "SWITCHBOARD_MASTER_KEY": MASTER,
           "REDIS_URL": redis_server, "DATABASE_URL": fresh_postgres_database(postgres_server),
           "SWITCHBOARD_CONFIG": str(config)}
    started = []
    try:
        for name in ("a", "b"):  # separate data folders: only the shared stores are shared
            started.append(GunicornProxy({**env, "SWITCHBOARD_DATA_DIR": str(folder / name)},
                                         folder / f"{name}.log"))
        yield started
    finally:
        with ThreadPoolExecutor(max_workers=2) as pool:  # each stop waits for its graceful exit
            list(pool.map(GunicornProxy.stop, started))


def call(proxy, method: str, path: str, headers=ADMIN, **kwargs) -> urllib3.BaseHTTPResponse:
    return urllib3.request(method, f"{proxy.base_url}{path}", headers=headers, timeout=30,
                           **kwargs)


def generate(proxy, **settings) -> dict:
    response = call(proxy, "POST", "/key/generate", json=settings)
    assert response.status == 200, response.data
    return response.json()


def test_a_key_made_on_one_works_on_the_other_until_revoked_there(instances):
    a, b = instances
    made = generate(a)
    reply = call(b, "POST", "/v1/chat/completions", bearer(made["key"]), json=ask("revoke me"))
    assert reply.status == 200
    assert call(b, "POST", "/key/delete", json={"key_id": made["key_id"]}).status == 200
    for proxy in (a, b, a, b):
        refused = call(proxy, "POST", "/v1/chat/completions", bearer(made["key"]),
                       json=ask("revoke me"))
        assert refused.status == 401


def test_a_rate_limit_is_counted_across_both(instances):
    made = generate(instances[0], rpm_limit=10)
    http = urllib3.PoolManager(maxsize=30)
    targets = itertools.islice(itertools.cycle(instances), 30)
    fresh_window(5)
    with ThreadPoolExecutor(max_workers=30) as pool:
        replies = list(pool.map(lambda proxy: http.request(
            "POST", f"{proxy.base_url}/v1/chat/completions", json=ask("count me"),
            headers=bearer(made["key"]), timeout=30), targets))
    assert sorted(r.status for r in replies) == [200] * 10 + [429] * 20


def test_spend_from_both_lands_in_one_ledger_and_one_budget(instances):
    a, b = instances
    made = generate(a, max_budget=1.0)
    costs = []
    for number, proxy in enumerate((a, b, a, b, b)):
        reply = call(proxy, "POST", "/v1/chat/completions", bearer(made["key"]),
                     json=ask(f"spend {number}"))
        assert reply.status == 200
        costs.append(float(reply.headers["x-switchboard-cost"]))
    for proxy in (a, b):
        info = call(proxy, "GET", f"/key/info?key_id={made['key_id']}").json()
        assert info["spend"] == pytest.approx(sum(costs))
    deadline = time.monotonic() + 15  # every worker's ledger writes within its flush interval
    while True:
        rows = [row for row in call(b, "GET", "/spend/keys").json()["data"]
                if row["key_id"] == made["key_id"]]
        if rows and rows[0]["requests"] == 5 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert rows and rows[0]["requests"] == 5
    assert rows[0]["cost"] == pytest.approx(sum(costs))


def test_a_cooldown_on_one_is_seen_by_the_other(instances, openai_emu):
    a, b = instances
    openai_emu.fail_next(Fault(reply=Reply(500, {"error": {"message": "boom"}})))
    failed = call(a, "POST", "/v1/chat/completions", json=ask(model="shared-model"))
    assert failed.status == 502
    states = {d["deployment"]: d["state"] for d in
              call(b, "GET", "/health/deployments").json()["deployments"]}
    assert states == {"shared-model[0]": "cooling_down"}


def test_the_cache_is_shared_and_scoped_per_key(instances):
    a, b = instances
    first, second = generate(a), generate(b)
    question = ask("cache me across instances", temperature=0)
    answers = [call(proxy, "POST", "/v1/chat/completions", bearer(key["key"]), json=question)
               for proxy, key in ((a, first), (b, first), (b, second))]
    assert [r.status for r in answers] == [200, 200, 200]
    assert [r.headers["x-switchboard-cache"] for r in answers] == ["miss", "hit", "miss"]
