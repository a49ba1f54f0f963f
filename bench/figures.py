"""What one measurement says: the values bench/summarize.py puts in its cells, read from a
record of results.jsonl (and the run's meta.txt), and how they are printed."""
import statistics


def get(d, *path):
    for key in path:
        if not isinstance(d, dict):
            return None
        d = d.get(key)
    return d


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def num(v, nd=2):
    if v is None:
        return "–"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.{nd}f}"


def ratio(a, b):
    if a is None or not b:
        return "–"
    r = a / b
    return f"{r:.2g}×" if r < 0.1 else f"{r:.0f}×" if r >= 100 else f"{r:.2f}×"


def cpu_ms_per_request(rec):
    cpu = get(rec, "mon", "groups", "target", "cpu_s")
    r = rec["result"]
    n = (r.get("requests") or r.get("streams") or 0) + (r.get("warmup_requests") or 0)
    return 1000 * cpu / n if cpu is not None and n else None


def errors(rec):
    r = rec["result"]
    return r.get("error_count")


def error_kinds(recs):
    kinds = {}
    for rec in recs:
        for k, v in (rec["result"].get("errors") or {}).items():
            if v:
                kinds[k] = kinds.get(k, 0) + v
    return ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) or "none"


def field(*path):
    return lambda rec: get(rec["result"], *path)


def ok_rps(rec):
    """wrk counts non-2xx answers as requests: only the good ones make throughput."""
    r = rec["result"]
    rps, status_errors = r.get("rps"), get(r, "errors", "status") or 0
    if rps is None or not r.get("requests"):
        return rps
    return rps * (r["requests"] - status_errors) / r["requests"]


def paced_ms(result):
    total, ttft = get(result, "total_ms", "p50"), get(result, "ttft_ms", "p50")
    return total - ttft if total is not None and ttft is not None else None


def tail_ratio(rec):
    p50, p99 = get(rec["result"], "latency_ms", "p50"), get(rec["result"], "latency_ms", "p99")
    return p99 / p50 if p50 and p99 is not None else None


def meta_line(meta, key):
    for line in meta.splitlines():
        if line.startswith(key + ":"):
            return line.split(":", 1)[1].strip()
    return None


def ideal_pct(rec, meta):
    conc = int(rec["case"].split("=", 1)[1])
    latency_s = float(meta_line(meta, "realistic_latency_ms") or 1000) / 1000
    rps = rec["result"].get("rps")
    return 100 * rps / (conc / latency_s) if rps is not None else None


def rss_text(rss):
    if not rss:
        return "–"
    kids = rss.get("children") or []
    return f"{num(rss.get('master'), 0)} / " + " + ".join(num(k, 0) for k in kids) + \
        f" (sum {num((rss.get('master') or 0) + sum(kids), 0)})"
