#!/usr/bin/env python3
"""Response cache benchmark: how well the semantic matcher tells paraphrases from near-misses,
and how fast a semantic lookup is as the index grows.

  .venv/bin/python bench/cache_bench.py [--sizes 1000 10000 100000] [--queries 400]

1. Accuracy on bench/data/semantic_pairs.jsonl (prompt pairs labelled "should hit" or "must
   not hit", by kind of near-miss), in two regimes: a fresh index holding only the cached
   prompt (IDF knows one document) and a filled index holding every pair's cached prompt,
   each in its own partition (IDF knows them all). Precision and recall at the default
   threshold, then a sweep: recall, false hits, and how many near-misses score above the
   threshold before the guard looks at them.
2. Semantic lookup latency (index search + near-miss guard, what a lookup adds to the exact
   one) with 1k, 10k and 100k prompts all in ONE partition, the worst case; and a whole
   Cache.lookup (backend reads, log catch-up, counters) over the disk backend with 1k entries.

Exact-hit throughput through gunicorn against the upstream called directly is scenario 5
of the shared harness (bench/run.sh); `make bench-cache` runs both.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.cache.backends.disk import DiskBackend  # noqa: E402
from app.cache.cache import Cache  # noqa: E402
from app.cache.config import DEFAULT_THRESHOLD, load_config  # noqa: E402
from app.cache.guard import refusal  # noqa: E402
from app.cache.index import SemanticIndex  # noqa: E402
from app.cache.semantic import SemanticMatcher  # noqa: E402
from app.cache.types import CacheRequest  # noqa: E402
from app.config import load_settings  # noqa: E402

PAIRS = ROOT / "bench" / "data" / "semantic_pairs.jsonl"
SWEEP = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)


def load_pairs() -> list[dict]:
    return [json.loads(line) for line in PAIRS.read_text(encoding="utf-8").splitlines() if line]


def similarities(pairs: list[dict]) -> tuple[list[float], list[float]]:
    """Cosine of each pair's second prompt with its first: fresh index, filled index."""
    fresh, filled = [], []
    index = SemanticIndex()
    for pair in pairs:
        index.clear()
        index.add([("p", "a", pair["a"])])
        fresh.append(_score(index, "p", pair["b"]))
    index.clear()
    index.add([(f"pair{i}", f"a{i}", pair["a"]) for i, pair in enumerate(pairs)])
    for i, pair in enumerate(pairs):
        filled.append(_score(index, f"pair{i}", pair["b"]))
    return fresh, filled


def _score(index: SemanticIndex, partition: str, text: str) -> float:
    found = index.search(partition, text, 0.0)
    return found[0].similarity if found else 0.0


def accuracy(pairs: list[dict]) -> None:
    fresh, filled = similarities(pairs)
    refused = [refusal(p["a"], p["b"]) for p in pairs]
    positives = sum(p["hit"] for p in pairs)
    print(f"semantic matching: {PAIRS.relative_to(ROOT)}, {len(pairs)} pairs "
          f"({positives} should hit, {len(pairs) - positives} must not)")

    def count(scores, threshold, guarded=True):
        hits = [s >= threshold and not (guarded and r) for s, r in zip(scores, refused)]
        true = sum(h and p["hit"] for h, p in zip(hits, pairs))
        false = sum(h and not p["hit"] for h, p in zip(hits, pairs))
        return true, false

    print(f"\nat the default threshold {DEFAULT_THRESHOLD}:")
    for name, scores in (("fresh index ", fresh), ("filled index", filled)):
        true, false = count(scores, DEFAULT_THRESHOLD)
        precision = true / (true + false) if true + false else 1.0
        print(f"  {name}  precision {precision:.3f} ({true} hits, {false} false)  "
              f"recall {true / positives:.3f}")
    print("  recall (fresh index) of paraphrases that differ only in:", ", ".join(
        f"{differs} {_recall(pairs, fresh, refused, differs):.3f}"
        for differs in sorted({p["differs"] for p in pairs if p.get("differs")})))
    misses = len(pairs) - positives
    print("\nsweep (false = false hits after the guard; over = near-misses scoring above the "
          "threshold before it):")
    print("  threshold   fresh: recall  false  over      filled: recall  false  over")
    for threshold in SWEEP:
        row = []
        for scores in (fresh, filled):
            true, false = count(scores, threshold)
            _, over = count(scores, threshold, guarded=False)
            row.append(f"{true / positives:6.3f}  {false:5d}  {over:3d}/{misses}")
        print(f"  {threshold:9.2f}   {row[0]}      {row[1]}")
    reasons = Counter(f"{p['kind']}->{r}" for p, r in zip(pairs, refused) if not p["hit"] and r)
    print("\nnear-misses the guard refuses, kind -> reason:",
          ", ".join(f"{k} {n}" for k, n in sorted(reasons.items())))
    lost = Counter(r for p, r in zip(pairs, refused) if p["hit"] and r)
    print("paraphrases the guard refuses (recall it costs), by reason:",
          ", ".join(f"{k} {n}" for k, n in sorted(lost.items())) or "none")


def _recall(pairs: list[dict], scores: list[float], refused: list, differs: str) -> float:
    group = [s >= DEFAULT_THRESHOLD and not r
             for p, s, r in zip(pairs, scores, refused) if p.get("differs") == differs]
    return sum(group) / len(group)


def synthetic(count: int, rng: random.Random, pool: list[str]) -> list[str]:
    """Distinct, prompt-like texts: an eval-set prompt with a varied task and subject."""
    tasks = ("Explain", "Summarize", "Give me an example of", "Compare", "Write a short note on",
             "List the pitfalls of", "How do I debug", "What is the history of")
    subjects = [f"{word}{n}" for n in range(400) for word in ("project", "module", "service")]
    return [f"{rng.choice(tasks)} {rng.choice(subjects)} {rng.choice(subjects)}: "
            f"{rng.choice(pool)} ({i})" for i in range(count)]


def latency(sizes: list[int], queries: int, pool: list[str]) -> None:
    rng = random.Random(6)
    print(f"\nsemantic lookup (search + guard), all prompts in one partition, {queries} "
          "lookups, half near-duplicates of stored prompts:")
    for size in sizes:
        matcher = SemanticMatcher(DEFAULT_THRESHOLD, capacity=size)
        texts = synthetic(size, rng, pool)
        started = time.perf_counter()
        for start in range(0, size, 1000):
            matcher.index.add([("p", f"k{i}", texts[i])
                               for i in range(start, min(size, start + 1000))])
        loaded = time.perf_counter() - started
        asked = [rng.choice(texts).lower().rstrip(")") if n % 2 else synthetic(1, rng, pool)[0]
                 for n in range(queries)]
        timings = _timed(lambda text: next(matcher.match("p", text), None), asked)
        print(f"  {size:>7,} prompts  p50 {_pct(timings, 50):6.2f} ms  "
              f"p99 {_pct(timings, 99):6.2f} ms   (indexing {loaded / size * 1e3:.3f} ms "
              "per prompt, in batches of 1,000)")


def whole_lookup(entries: int, queries: int, pool: list[str]) -> None:
    """Cache.lookup over the disk backend: exact hits and semantic hits."""
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as folder:
        settings = load_settings({"SWITCHBOARD_DATA_DIR": folder})
        settings.sections["cache"] = {"enabled": True, "mode": "semantic"}
        config = load_config(settings)
        cache = Cache(config, DiskBackend(config.directory, config.max_bytes),
                      SemanticMatcher(config.threshold))
        texts = synthetic(entries, rng, pool)
        for text in texts:
            cache.store(_request(text), _answer(text), "gpt-4o-mini", "openai", 0.0001)
        cache.lookup(_request("warm the index up"))
        print(f"\nwhole Cache.lookup, disk backend, {entries:,} entries:")
        for name, asked in (("exact hit", [rng.choice(texts) for _ in range(queries)]),
                            ("semantic hit", [rng.choice(texts).lower() for _ in range(queries)])):
            requests = [_request(text) for text in asked]
            answers = []
            timings = _timed(lambda request: answers.append(cache.lookup(request)), requests)
            found = Counter(answer.status if answer else "miss" for answer in answers)
            print(f"  {name:12s}  p50 {_pct(timings, 50):6.2f} ms  p99 {_pct(timings, 99):6.2f} ms"
                  f"   ({dict(found)})")


def _request(text: str) -> CacheRequest:
    return CacheRequest("gpt-4o-mini", {"messages": [{"role": "user", "content": text}]})


def _answer(text: str) -> dict:
    return {"id": "x", "object": "chat.completion", "created": 0, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 9, "total_tokens": 18}}


def _timed(run, inputs) -> list[float]:
    timings = []
    for item in inputs:
        started = time.perf_counter()
        run(item)
        timings.append((time.perf_counter() - started) * 1e3)
    return sorted(timings)


def _pct(sorted_values: list[float], p: float) -> float:
    return statistics.quantiles(sorted_values, n=100, method="inclusive")[p - 1] if p < 100 \
        else sorted_values[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--entries", type=int, default=1000, help="for the whole-lookup figures")
    args = parser.parse_args()
    pairs = load_pairs()
    accuracy(pairs)
    pool = [p["a"] for p in pairs]
    latency(args.sizes, args.queries, pool)
    whole_lookup(args.entries, args.queries, pool)


if __name__ == "__main__":
    main()
