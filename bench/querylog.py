"""What the query log costs a search: the real app under TestClient, searched with and without
KB_QUERY_LOG, alternating query by query so both see the same machine and the same caches.

    python -m bench.querylog [--content content] [--searches 1000]

Prints p50/p95 of GET /api/search with and without the log, the time of log_search alone, and
how fast the writer thread stores entries."""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

from kb.config import Settings
from kb.knowledge_base import KnowledgeBase
from kb.querylog import LOG_FILE, LogSettings, QueryLog
from server.app import create_app


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--content", type=Path, default=Path("content"))
    parser.add_argument("--data", type=Path, default=None, help="reuse an index folder")
    parser.add_argument("--searches", type=int, default=1000)
    args = parser.parse_args()
    data = args.data or Path(tempfile.mkdtemp(prefix="kb-bench-log-"))
    kb = KnowledgeBase(args.content, data)
    kb.reindex()
    lines = (args.content / "_eval" / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    queries = [json.loads(line)["query"] for line in lines if line.strip()]
    queries = (queries * (args.searches // len(queries) + 1))[: args.searches]

    log_file = data / LOG_FILE  # where the app logs: beside the index
    log_file.unlink(missing_ok=True)
    on = Settings(content_dir=args.content, data_dir=data, query_log=True)
    off = Settings(content_dir=args.content, data_dir=data, query_log=False)
    times: dict[str, list[float]] = {"with log": [], "without log": []}
    with TestClient(create_app(on, kb)) as logged, TestClient(create_app(off, kb)) as bare:
        for q in set(queries):  # warm the query-vector cache for both
            bare.get("/api/search", params={"q": q})
        for n, q in enumerate(queries):
            pair = [("with log", logged), ("without log", bare)]
            for name, client in pair if n % 2 else pair[::-1]:
                start = time.perf_counter()
                assert client.get("/api/search", params={"q": q}).status_code == 200
                times[name].append((time.perf_counter() - start) * 1000)
        logged.app.state.querylog.flush()
        dropped = logged.app.state.querylog.dropped
    log_file.unlink(missing_ok=True)

    print(f"{len(queries)} searches each, content {args.content}")
    print(f"{'':<14}{'p50 ms':>9}{'p95 ms':>9}{'mean ms':>9}")
    for name, values in times.items():
        print(f"{name:<14}{percentile(values, 0.5):>9.2f}{percentile(values, 0.95):>9.2f}"
              f"{statistics.fmean(values):>9.2f}")
    diff = statistics.median(a - b for a, b in zip(times["with log"], times["without log"]))
    print(f"median paired difference: {diff:+.3f} ms; searches dropped by the log: {dropped}")

    hits = kb.search("家里突然没电了", k=10)
    with tempfile.TemporaryDirectory() as logs:
        log = QueryLog(LogSettings(Path(logs) / "q.sqlite", capacity=200_000))
        n = 100_000
        start = time.perf_counter()
        for i in range(n):
            log.log_search(f"户号3301234567 问题{i}", hits, agent="A001")
        queued = time.perf_counter() - start
        log.flush(timeout=300)
        stored = time.perf_counter() - start
        log.close()
    print(f"log_search alone: {queued / n * 1e6:.1f} µs a call; the writer stored {n:,} "
          f"searches (masked, batched) in {stored:.1f} s, {n / stored:,.0f} a second; "
          f"dropped {log.dropped}")


if __name__ == "__main__":
    main()
