"""Stored responses in the proxy's database (SQLite, and PostgreSQL with DATABASE_URL): each
visible only to the key that made it and the master key, kept `retention_days`, then
never served and purged."""
from __future__ import annotations

import time

import pytest

from app.config import ConfigError
from app.storage.database import Database, database_url
from tests.keys_fixtures import ADMIN, MASTER, MODEL, bearer, generate, ledger_rows
from tests.keys_fixtures import keyed  # noqa: F401  (the fixture)


@pytest.fixture(params=["sqlite", "postgres"])
def database_env(request) -> dict:
    if request.param == "postgres":
        return {"DATABASE_URL": request.getfixturevalue("postgres_url")}
    return {}


def create(client, headers, **body):
    response = client.post("/v1/responses", json={"model": MODEL, "input": "hi", **body},
                           headers=headers)
    assert response.status_code == 200, response.json
    return response.json


def test_each_key_sees_only_its_own(keyed, database_env):
    client = keyed(database_env)
    alice, bob = (generate(client, alias=name) for name in ("alice", "bob"))
    mine = create(client, bearer(alice["key"]))["id"]
    for path in (f"/v1/responses/{mine}", f"/v1/responses/{mine}/input_items"):
        assert client.get(path, headers=bearer(alice["key"])).status_code == 200
        assert client.get(path, headers=ADMIN).status_code == 200
        hidden = client.get(path, headers=bearer(bob["key"]))
        assert hidden.status_code == 404 and mine in hidden.json["error"]["message"]
    continued = client.post("/v1/responses", headers=bearer(bob["key"]), json={
        "model": MODEL, "input": "more", "previous_response_id": mine})
    assert continued.status_code == 400
    assert continued.json["error"]["param"] == "previous_response_id"
    assert client.delete(f"/v1/responses/{mine}", headers=bearer(bob["key"])).status_code == 404
    assert client.delete(f"/v1/responses/{mine}", headers=bearer(alice["key"])).json[
        "deleted"] is True
    rows = ledger_rows(client, alice["key_id"])
    assert [row["api"] for row in rows] == ["responses"]


def test_item_references_see_only_the_keys_own_items(keyed, database_env):
    client = keyed(database_env)
    alice, bob = (generate(client, alias=name) for name in ("alice", "bob"))
    first = create(client, bearer(alice["key"]), input="my name is Ada")
    reference = {"type": "item_reference", "id": first["output"][0]["id"]}
    refused = client.post("/v1/responses", headers=bearer(bob["key"]), json={
        "model": MODEL, "input": [reference, {"role": "user", "content": "who am I"}]})
    assert refused.status_code == 400 and refused.json["error"]["param"] == "input[0].id"
    allowed = create(client, bearer(alice["key"]),
                     input=[reference, {"role": "user", "content": "who am I"}])
    assert allowed["status"] == "completed"


def test_virtual_keys_reach_the_responses_paths_only(keyed):
    client = keyed()
    key = generate(client)["key"]
    assert client.get("/v1/responses/resp_sb_none", headers=bearer(key)).status_code == 404
    assert client.get("/spend/logs", headers=bearer(key)).status_code == 403


def test_expired_responses_are_not_served_and_are_purged(keyed, write_config, tmp_path,
                                                         database_env):
    client = keyed(database_env, write_config("responses: {retention_days: 1}\n"))
    old = create(client, ADMIN)["id"]
    service = client.application.extensions["switchboard"]
    database = Database(database_url({**service.settings.env}, service.settings.data_dir))
    database.execute("UPDATE stored_responses SET created_at = ? WHERE id = ?",
                     (time.time() - 2 * 86400, old))
    assert client.get(f"/v1/responses/{old}", headers=ADMIN).status_code == 404
    store = client.application.extensions["switchboard.responses"]
    assert store.purge() == 1
    assert database.query("SELECT COUNT(*) FROM stored_responses")[0][0] == 0
    database.close()


def test_retention_must_be_positive(keyed, write_config):
    with pytest.raises(ConfigError, match="responses.retention_days"):
        keyed(config=write_config("responses: {retention_days: 0}\n"))


def test_master_key_is_required_without_a_virtual_key(keyed):
    client = keyed()
    assert client.post("/v1/responses", json={"model": MODEL, "input": "hi"}).status_code == 401
    assert client.get("/v1/responses/x", headers=bearer(MASTER + "x")).status_code == 401
