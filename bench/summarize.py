#!/usr/bin/env python3
"""results.jsonl (one record per measurement) -> one markdown table with same-run ratios.

  summarize.py OUT_DIR        the summary (markdown) on stdout
  summarize.py --line FILE    a one-line digest of the last record (progress while running)

Each cell is the median over the repeats; errors are summed. "+x" is the difference to
`direct` (the mock alone) measured in the same run; the last column compares Switchboard
with the peer.
"""
import json
import os
import statistics
import sys
from collections import OrderedDict

from figures import (cpu_ms_per_request, error_kinds, errors, field, get, ideal_pct, median, meta_line,
                     num, ok_rps, paced_ms, ratio, rss_text, tail_ratio)

PROXY, PEER = "switchboard", "litellm"
TITLES = {
    "1": "1 added latency, c=1, upstream 0 ms",
    "2": "2 throughput, upstream 0 ms",
    "3": "3 realistic: {lat}",
    "4": "4 streaming, {chunks}",
    "5": "5 exact-cache hits",
    "6": "6 memory and start-up",
    "7": "7 scaling, c=1, upstream 0 ms",
    "8": "8 embeddings, 16-input batch, upstream 0 ms",
    "9": "9 Responses API (/v1/responses), upstream 0 ms",
    "10": "10 Messages API (/v1/messages) passed through to Anthropic beside the chat path, upstream 0 ms",
    "keys": "keys: a virtual key with rpm, tpm and a budget, upstream 0 ms",
    "tracing": "tracing: OpenTelemetry on (switchboard+otel) vs off, upstream 0 ms",
}
KEYED = ("switchboard+keys", "switchboard+keys-pg")
# Each keyed target beside the same server without a key (the plain switchboard when absent).
UNKEYED = {"switchboard+keys-pg": "switchboard+pg"}
TRACED = "switchboard+otel"


def one_line(rec):
    r = rec["result"]
    bits = [f"[{rec['scenario']} {rec['case']} {rec['target']} r{rec['repeat']}]"]
    if "skipped" in r or "failed" in r:
        bits.append(str(r.get("skipped") or r.get("failed"))[:200])
    for label, path in (("rps", ("rps",)), ("p50", ("latency_ms", "p50")), ("p99", ("latency_ms", "p99")),
                        ("self", ("header_ms", "p50")), ("ttft50", ("ttft_ms", "p50")),
                        ("ok", ("ok",)), ("peak_open", ("peak_open_streams",)),
                        ("startup_s", ("startup_s",)), ("err", ("error_count",))):
        v = get(r, *path)
        if v is not None:
            bits.append(f"{label}={v}")
    cpu = cpu_ms_per_request(rec)
    if cpu is not None:
        bits.append(f"cpu_ms/req={cpu:.2f}")
    busy = get(rec, "mon", "busy_pct")
    if busy is not None:
        bits.append(f"busy={busy}%")
    return " ".join(bits)


class Table:
    def __init__(self, recs, targets):
        self.cells = OrderedDict()
        for rec in recs:
            self.cells.setdefault((rec["scenario"], rec["case"], rec["target"]), []).append(rec)
        self.targets = targets
        self.rows = []

    def recs(self, sc, case, target):
        return self.cells.get((sc, case, target), [])

    def value(self, sc, case, target, fn):
        return median([fn(rec) for rec in self.recs(sc, case, target)])

    def busy(self, sc, case):
        return median([get(rec, "mon", "other_pct") for t in self.targets for rec in self.recs(sc, case, t)])

    def add(self, title, case, metric, cells, compare, busy):
        self.rows.append((title, case, metric, cells, compare, num(busy, 0) if busy is not None else "–"))

    def metric(self, sc, title, case, metric, fn, added=False, better="lower", peer_ratio=True, nd=2,
               label=None):
        """A row: the median of fn per target; with added=True also +difference to direct.
        The last column: Switchboard / peer (of the added part when added=True)."""
        vals = {t: self.value(sc, case, t, fn) for t in self.targets}
        base = vals.get("direct")
        cells = {}
        for t, v in vals.items():
            if v is None:
                cells[t] = "–"
            elif added and t != "direct" and base is not None:
                diff = v - base
                cells[t] = f"{num(v, nd)} ({'+' if diff >= 0 else '−'}{num(abs(diff), nd)})"
            else:
                cells[t] = num(v, nd)
        compare = "–"
        if peer_ratio and vals.get(PROXY) is not None and vals.get(PEER) is not None:
            a, b = vals[PROXY], vals[PEER]
            if added and base is not None:
                a, b = a - base, b - base
            compare = ratio(a, b)
            if compare != "–" and a != b:
                wins = (a < b) == (better == "lower")
                compare += " (better)" if wins else " (worse)"
        self.add(title, label or case, metric, cells, compare, self.busy(sc, case))

    def text(self, sc, title, case, metric, fn, targets=None, label=None):
        cells = {}
        for t in self.targets:
            recs = self.recs(sc, case, t)
            cells[t] = fn(recs) if recs and (targets is None or t in targets) else "–"
        self.add(title, label or case, metric, cells, "–", self.busy(sc, case))

    def render(self):
        cols = ["direct"] + [t for t in self.targets if t != "direct"]
        out = ["| scenario | case | metric | " + " | ".join(cols)
               + (" | switchboard vs " + PEER if PEER in cols else "") + " | others' CPU % |",
               "|---|---|---|" + "---:|" * len(cols) + ("---|" if PEER in cols else "") + "---:|"]
        last = None
        for title, case, metric, cells, compare, busy in self.rows:
            shown = title if title != last else ""
            last = title
            out.append(f"| {shown} | {case} | {metric} | " + " | ".join(cells.get(t, "–") for t in cols)
                       + (f" | {compare}" if PEER in cols else "") + f" | {busy} |")
        return "\n".join(out)


def cases(recs, sc):
    seen = []
    for rec in recs:
        if rec["scenario"] == sc and rec["case"] not in seen:
            seen.append(rec["case"])
    return seen


def errors_text(recs):
    total = sum(errors(r) or 0 for r in recs)
    sent = sum((r["result"].get("requests") or r["result"].get("streams") or 0) for r in recs)
    return f"{total} / {sent:,}" + (f" ({error_kinds(recs)})" if total else "")


def rows_latency(tb, sc, title, case, meta):
    tb.metric(sc, title, case, "latency p50 ms (+added)", field("latency_ms", "p50"), added=True)
    tb.metric(sc, title, case, "latency p99 ms (+added)", field("latency_ms", "p99"), added=True)
    tb.metric(sc, title, case, "latency p99.9 ms (+added)", field("latency_ms", "p99.9"), added=True)
    tb.metric(sc, title, case, "self-measured overhead p50 ms (x-switchboard-overhead-ms)",
              field("header_ms", "p50"), peer_ratio=False)
    tb.metric(sc, title, case, "CPU ms / request (server tree)", cpu_ms_per_request)
    tb.text(sc, title, case, "errors / requests", errors_text)
    rows_workers(tb, sc, title, case)


def rows_workers(tb, sc, title, case):
    tb.text(sc, title, case, "requests per worker", worker_shares,
            targets={t for t in tb.targets if t.startswith(PROXY)})


def rows_throughput(tb, sc, title, case, meta):
    tb.metric(sc, title, case, "req/s (2xx)", ok_rps, better="higher", nd=0)
    if sc == "3":
        tb.metric(sc, title, case, "req/s as % of the ideal (in flight / upstream s)",
                  lambda r: ideal_pct(r, meta), better="higher", nd=1)
    tb.metric(sc, title, case, "latency p50 ms (+added)", field("latency_ms", "p50"), added=True)
    tb.metric(sc, title, case, "latency p99 ms (+added)", field("latency_ms", "p99"), added=True)
    tb.metric(sc, title, case, "latency p99.9 ms (+added)", field("latency_ms", "p99.9"), added=True)
    tb.metric(sc, title, case, "p99 ÷ p50", tail_ratio)
    tb.text(sc, title, case, "errors / requests", errors_text)
    tb.metric(sc, title, case, "CPU ms / request (server tree)", cpu_ms_per_request)
    rows_workers(tb, sc, title, case)
    if sc in ("5", "8"):
        def counts(rs):
            seen = rs[0]["result"].get("header_counts") or {}
            return ", ".join(f"{k} {v}" for k, v in seen.items()) or "–"
        tb.text(sc, title, case, "x-switchboard-cache values", counts)
        # scenario 5's hits against scenario 2; scenario 8's "cached c=N" against its "c=N"
        plain_sc, plain_case = ("2", case) if sc == "5" else ("8", case.removeprefix("cached "))
        hit, uncached = tb.value(sc, case, PROXY, ok_rps), tb.value(plain_sc, plain_case, PROXY, ok_rps)
        if hit and uncached and (sc, case) != (plain_sc, plain_case):
            tb.add(title, case, f"cached req/s ÷ uncached req/s (scenario {plain_sc}, same run)",
                   {PROXY: ratio(hit, uncached)}, "–", None)


def rows_stream(tb, sc, title, case, meta):
    tb.metric(sc, title, case, "TTFT p50 ms (+added)", field("ttft_ms", "p50"), added=True)
    tb.metric(sc, title, case, "TTFT p99 ms (+added)", field("ttft_ms", "p99"), added=True)
    tb.metric(sc, title, case, "TTFT p99.9 ms (+added)", field("ttft_ms", "p99.9"), added=True)
    tb.metric(sc, title, case, "stream total p50 ms (+added)", field("total_ms", "p50"), added=True)
    tb.text(sc, title, case, "errors / streams", errors_text)


def rows_burst(tb, sc, title, case, meta):
    def complete(rs):
        return " ; ".join(f"{r['result'].get('ok', 0)}/{r['result'].get('streams', '?')}" for r in rs)
    tb.text(sc, title, case, "streams complete (every chunk, then [DONE])", complete)
    tb.text(sc, title, case, "failed streams by kind", error_kinds)
    tb.metric(sc, title, case, "peak streams open at once", field("peak_open_streams"), better="higher", nd=0)
    tb.metric(sc, title, case, "TTFT p99 ms", field("ttft_ms", "p99"))
    tb.metric(sc, title, case, "TTFT p99.9 ms", field("ttft_ms", "p99.9"))
    tb.metric(sc, title, case, "total p50 − TTFT p50 ms (≈ 0: chunks came bunched)",
              lambda r: paced_ms(r["result"]), peer_ratio=False, nd=0)
    tb.metric(sc, title, case, "whole burst s", field("wall_s"))
    rows_workers(tb, sc, title, case)


def rows_memory_load(tb, sc, title, case, meta):
    def sent(rs):
        r = rs[0]["result"]
        bound = " (time bound hit)" if r.get("stopped_by_time") else ""
        return f"{r.get('ok', 0):,} ok in {r.get('seconds')} s{bound}"
    tb.text(sc, title, case, "requests sent (c=16)", sent, label="load")
    tb.metric(sc, title, case, "CPU ms / request (server tree)", cpu_ms_per_request, label="load")


def rows_memory(tb, sc, title, case, meta):
    tb.metric(sc, title, case, "start-up s (exec -> /health 200)", field("startup_s"), label="fresh start")
    tb.text(sc, title, case, "RSS MB master / workers", lambda rs: rss_text(rs[0]["result"].get("rss_idle")),
            label="idle")
    tb.text(sc, title, case, "RSS MB master / workers", lambda rs: rss_text(rs[0]["result"].get("rss_after")),
            label="after the load")


def rows_startup(tb, sc, title, case, meta):
    tb.metric(sc, title, case, "start-up s (exec -> /health 200)", field("startup_s"), peer_ratio=False)


def rows_keys(tb, sc, title, case, meta):
    """What a key's checks cost: each keyed Switchboard against Switchboard without a key, and
    on PostgreSQL + Redis also against that same server called without a key
    (switchboard+pg: its ledger in PostgreSQL too)."""
    rows_throughput(tb, sc, title, case, meta)
    plain = tb.value(sc, case, PROXY, ok_rps)
    shown = {t: ratio(tb.value(sc, case, t, ok_rps), plain) for t in KEYED if tb.recs(sc, case, t)}
    if plain and shown:
        tb.add(title, case, "req/s with the key ÷ without a key (switchboard)", shown, "–", None)
    same = {t: ratio(tb.value(sc, case, t, ok_rps), tb.value(sc, case, UNKEYED[t], ok_rps))
            for t in KEYED if t in UNKEYED and tb.recs(sc, case, t) and tb.recs(sc, case, UNKEYED[t])}
    if same:
        tb.add(title, case, "req/s with the key ÷ the same server without a key", same, "–", None)


def worker_shares(recs):
    """Each worker's share of the requests, biggest first, e.g. "52 / 48 %"."""
    counts = {}
    for rec in recs:
        for i, n in enumerate(sorted((rec.get("workers") or {}).values(), reverse=True)):
            counts[i] = counts.get(i, 0) + n
    total = sum(counts.values())
    return " / ".join(f"{100 * counts[i] / total:.0f}" for i in sorted(counts)) + " %" if total else "–"


def histograms(recs):
    """One line per scenario, case and target: the share of requests (or first tokens) in each
    latency bucket, from the first repeat."""
    out = ["", "Latency histograms (% of requests per bucket, upper bound in ms; streams: TTFT), "
           "first repeat:", "", "| scenario | case | target | histogram |", "|---|---|---|---|"]
    for rec in recs:
        if rec["repeat"] != 1:
            continue
        hist = get(rec["result"], "latency_ms", "hist") or get(rec["result"], "ttft_ms", "hist")
        if not hist:
            continue
        cells = [f"≤{b}: {v:g}" if b is not None else f">{hist[-2][0]}: {v:g}" for b, v in hist if v]
        out.append(f"| {rec['scenario']} | {rec['case']} | {rec['target']} | {', '.join(cells)} |")
    return out


def rows_tracing(tb, sc, title, case, meta):
    """What tracing costs: the traced proxy against the same proxy untraced, same run."""
    latency = case == "c=1"
    (rows_latency if latency else rows_throughput)(tb, sc, title, case, meta)
    if latency:
        on, off = (tb.value(sc, case, t, field("latency_ms", "p50")) for t in (TRACED, PROXY))
        if on is not None and off is not None:
            tb.add(title, case, "tracing adds, p50 ms", {TRACED: num(on - off, 3)}, "–", None)
    else:
        on, off = (tb.value(sc, case, t, ok_rps) for t in (TRACED, PROXY))
        if on and off:
            tb.add(title, case, "req/s traced ÷ untraced", {TRACED: ratio(on, off)}, "–", None)


def rows_faces(tb, sc, title, case, meta):
    """Scenario 10: each face's rows; under the Messages pass-through's, how it compares with
    the same request on the chat path measured beside it (same run, same mock)."""
    latency = case.endswith("c=1")
    (rows_latency if latency else rows_throughput)(tb, sc, title, case, meta)
    chat = case.replace("pass-through", "chat", 1)
    if chat == case or not tb.recs(sc, chat, PROXY):
        return
    proxies = [t for t in tb.targets if t != "direct"]

    def added_p50(target, which):
        own, base = (tb.value(sc, which, t, field("latency_ms", "p50")) for t in (target, "direct"))
        return None if own is None or base is None else own - base

    if latency:
        cells = {}
        for t in proxies:
            a, b = added_p50(t, case), added_p50(t, chat)
            cells[t] = "–" if a is None or b is None else f"{a - b:+.3f}"
        tb.add(title, case, "added p50: pass-through − chat, ms (≤ 0: no dearer)", cells, "–", None)
    else:
        cells = {t: ratio(tb.value(sc, case, t, ok_rps), tb.value(sc, chat, t, ok_rps)) for t in proxies}
        tb.add(title, case, "req/s: pass-through ÷ chat (≥ 1: no slower)", cells, "–", None)
    cells = {t: ratio(tb.value(sc, case, t, cpu_ms_per_request), tb.value(sc, chat, t, cpu_ms_per_request))
             for t in proxies}
    tb.add(title, case, "CPU per request: pass-through ÷ chat", cells, "–", None)


def row_builder(sc, case):
    if sc == "10":
        return rows_faces
    if sc in ("8", "9"):
        return rows_latency if case.endswith("c=1") else rows_throughput
    if sc == "tracing":
        return rows_tracing
    if sc == "keys":
        return rows_keys
    if sc in ("1", "7"):
        return rows_startup if case.endswith("startup") else rows_latency
    if sc in ("2", "3", "5"):
        return rows_throughput
    if sc == "4":
        return rows_stream if case == "c=1" else rows_burst
    return rows_memory if case == "rss" else rows_memory_load


def summarize(out_dir):
    recs = [json.loads(line) for line in open(os.path.join(out_dir, "results.jsonl")) if line.strip()]
    seen = list(OrderedDict.fromkeys(rec["target"] for rec in recs))
    known = ("direct", PROXY, PEER)
    targets = [t for t in known if t in seen] + [t for t in seen if t not in known]
    tb = Table(recs, targets)
    meta_path = os.path.join(out_dir, "meta.txt")
    meta = open(meta_path).read().strip() if os.path.exists(meta_path) else ""
    for sc in sorted(TITLES):
        title = TITLES[sc].format(lat=meta_line(meta, "realistic") or "slow upstream",
                                  chunks=meta_line(meta, "stream") or "chunked")
        for case in cases(recs, sc):
            first = (tb.recs(sc, case, PROXY) or [None])[0]
            if first and "skipped" in first["result"]:
                tb.text(sc, title, case, "skipped", lambda rs: rs[0]["result"]["skipped"], targets={PROXY})
                continue
            row_builder(sc, case)(tb, sc, title, case, meta)

    busy = [get(r, "mon", "busy_pct") for r in recs if get(r, "mon", "busy_pct") is not None]
    other = [get(r, "mon", "other_pct") for r in recs if get(r, "mon", "other_pct") is not None]
    idle = [r["pre_busy_pct"] for r in recs if r.get("pre_busy_pct") is not None]
    lines = [f"# Switchboard benchmark ({os.path.basename(out_dir.rstrip('/'))})", "", "```", meta, "```", ""]
    if busy:
        lines.append(
            f"Machine busy (% of both cores) while measuring: median {statistics.median(busy):.0f} %, "
            f"of which outside the bench (other people's work, kernel networking) median "
            f"{statistics.median(other):.0f} %, max {max(other):.0f} %"
            + (f"; just before each measurement, with the bench idle: median "
               f"{statistics.median(idle):.0f} %, max {max(idle):.0f} %" if idle else "")
            + ". The machine has 2 cores shared by the load generator, the mock, the proxies and other "
            "people's work, so absolute figures are noisy: compare the same-run ratios.")
        lines.append("")
    lines.append(tb.render())
    lines.append("")
    lines.append("(+x) = minus `direct` (the mock alone) in the same run. Cells are medians over repeats; "
                 "errors are summed. CPU ms/request counts the server's whole process tree "
                 "(the mock for `direct`).")
    lines += histograms(recs)
    return "\n".join(lines)


def main():
    if sys.argv[1] == "--line":
        with open(sys.argv[2]) as fh:
            print(one_line(json.loads(fh.read().strip().splitlines()[-1])))
        return 0
    print(summarize(sys.argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
