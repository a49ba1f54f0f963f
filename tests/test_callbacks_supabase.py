"""Supabase against a real PostgreSQL holding the README's table: the rows the proxy sends
fit its columns, and a retried delivery leaves one row.

PostgREST itself cannot be installed here, so a PostgREST-shaped endpoint plays it: a JSON
array of rows whose keys must all be columns (else 400, as PostgREST answers), inserted with
`jsonb_populate_recordset` as PostgREST does, an upsert only under
`Prefer: resolution=merge-duplicates` with `on_conflict` (else a duplicate is 409).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import psycopg
import pytest

from tests.capture import SUPABASE_KEY, CaptureServer, Proxy, make_proxy, metric

README = Path(__file__).resolve().parents[1] / "README.md"
CONFIG = """
num_retries: 0
callbacks: {success: [supabase], failure: [supabase], timeout: 2, max_retries: 3}
"""


def readme_sql() -> str:
    return re.search(r"```sql\n(.*?)```", README.read_text(), re.DOTALL).group(1)


class PostgrestDouble:
    def __init__(self, url: str, table: str = "request_logs"):
        self.url, self.table = url, table
        self.lose_next_answers = 0  # commit, then answer 500 (a reply lost on the way back)
        with psycopg.connect(url) as db:
            self.columns = {r[0] for r in db.execute(
                "select column_name from information_schema.columns where table_name = %s",
                (table,))}

    def __call__(self, request) -> tuple[int, bytes]:
        rows = request.json()
        unknown = sorted({k for row in rows for k in row} - self.columns)
        if unknown:
            return 400, json.dumps({"code": "PGRST204", "message": f"Could not find the "
                                    f"'{unknown[0]}' column of '{self.table}'"}).encode()
        names = ", ".join(sorted(self.columns))
        sql = (f"insert into {self.table} ({names}) select {names} from "
               f"jsonb_populate_recordset(null::{self.table}, %s::jsonb)")
        upsert = "resolution=merge-duplicates" in request.headers.get("prefer", "")
        conflict = request.query.get("on_conflict", [None])[0]
        if upsert and conflict:
            updates = ", ".join(f"{c} = excluded.{c}" for c in sorted(self.columns))
            sql += f" on conflict ({conflict}) do update set {updates}"
        try:
            with psycopg.connect(self.url) as db:
                db.execute(sql, (json.dumps(rows),))
        except psycopg.errors.UniqueViolation:
            return 409, b'{"code": "23505"}'
        if self.lose_next_answers:
            self.lose_next_answers -= 1
            return 500, b'{"message": "lost"}'
        return 201, b""


@pytest.fixture
def database(postgres_url):
    with psycopg.connect(postgres_url) as db:
        db.execute(readme_sql())
    return postgres_url


@pytest.fixture
def supabase(database):
    double = PostgrestDouble(database)
    server = CaptureServer(double).start()
    yield server, double
    server.stop()


def proxy_for(server, provider_env, write_config) -> Proxy:
    env = {**provider_env, "SUPABASE_URL": server.url, "SUPABASE_KEY": SUPABASE_KEY}
    return make_proxy(env, write_config(CONFIG))


def table(database) -> dict[str, dict]:
    with psycopg.connect(database, row_factory=psycopg.rows.dict_row) as db:
        return {r["request_id"]: r for r in db.execute("select * from request_logs")}


def test_rows_fit_the_readme_table(supabase, database, provider_env, openai_emu, write_config):
    server, _ = supabase
    proxy = proxy_for(server, provider_env, write_config)
    ok = proxy.chat("row-ok", user="alice", metadata={"team": "search"})
    proxy.chat("row-stream", stream=True).get_data()
    proxy.chat("row-bad", model="no-such-model")
    proxy.close()
    assert all(r.query == {"on_conflict": ["request_id"]} for r in server.requests)
    rows = table(database)
    assert set(rows) == {"row-ok", "row-stream", "row-bad"}
    row = rows["row-ok"]
    assert (row["status"], row["success"], row["model"], row["provider"]) == (
        200, True, "gpt-4", "openai")
    assert row["messages"] == [{"role": "user", "content": "question row-ok"}]
    assert row["response"] == ok.json and row["end_user"] == "alice"
    assert row["metadata"] == {"team": "search"}
    assert row["prompt_tokens"] == ok.json["usage"]["prompt_tokens"]
    assert row["cost"] == pytest.approx(float(ok.headers["x-switchboard-cost"]))
    assert row["created_at"].timestamp() == pytest.approx(proxy.event("row-ok").started_at)
    assert rows["row-stream"]["stream"] is True and rows["row-stream"]["ttft_ms"] > 0
    bad = rows["row-bad"]
    assert (bad["success"], bad["status"], bad["error_code"]) == (False, 404, "model_not_found")


def test_a_retried_delivery_leaves_one_row(supabase, database, provider_env, openai_emu,
                                            write_config):
    server, double = supabase
    double.lose_next_answers = 1
    before = metric("switchboard_callback_events_total", integration="supabase", outcome="sent")
    proxy = proxy_for(server, provider_env, write_config)
    proxy.chat("row-retried")
    server.wait_for(2)  # the first call (committed, answered 500), then the retry
    proxy.close()
    assert [r.json()[0]["request_id"] for r in server.requests] == ["row-retried"] * 2
    assert list(table(database)) == ["row-retried"]
    assert metric("switchboard_callback_events_total", integration="supabase",
                  outcome="sent") - before == 1


def test_a_column_the_table_lacks_is_refused_not_retried(postgres_url, provider_env,
                                                         openai_emu, write_config):
    """A table without a column the proxy sends: PostgREST's 400 is final (no retry storm)."""
    with psycopg.connect(postgres_url) as db:
        db.execute(readme_sql())
        db.execute("alter table request_logs drop column overhead_ms")
    server = CaptureServer(PostgrestDouble(postgres_url)).start()
    before = metric("switchboard_callback_events_total", integration="supabase",
                    outcome="failed")
    try:
        proxy = proxy_for(server, provider_env, write_config)
        proxy.chat("row-refused")
        proxy.close()
    finally:
        server.stop()
    assert len(server.requests) == 1
    assert metric("switchboard_callback_events_total", integration="supabase",
                  outcome="failed") - before == 1
