"""Soak: one server for many minutes under steady search traffic while an editor saves articles
through the API (each save indexed by the server itself). Does memory stay flat, do searches
stay fast, does any request fail? Prints a row a period and writes the table to
docs/performance.md (section "Soak").

    python -m bench.soak --work /tmp/speedwork --minutes 10

`--work` is a folder as `python -m bench.speed --work` leaves it: content/ with the synthetic
articles and data/ with their index (built here first if there is none). The saves stay in its
content: soak a copy if bench.speed is to run on that folder again."""

import argparse
import http.client
import json
import os
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench import synthkb
from bench.speed import ROOT, SOURCES, ask, start_server
from kb.knowledge_base import KnowledgeBase

TOKEN = "soak-editor-token"
QUERIES_PER_S = 150  # more than the server answers
EDIT_FIELDS = ("title", "category", "tags", "similar", "answer", "basis", "effective",
               "effective_to")


@dataclass
class Period:
    started: float = field(default_factory=time.perf_counter)
    seconds: float = 0.0
    searches: list[float] = field(default_factory=list)
    saves: list[float] = field(default_factory=list)
    errors: int = 0
    rss_mb: float = 0.0

    def close(self, rss_mb: float) -> None:
        self.seconds, self.rss_mb = time.perf_counter() - self.started, rss_mb


def searcher(port: int, queries: list[str], stop: threading.Event, periods, lock) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    pool = iter(queries)
    while not stop.is_set():
        query = next(pool, None)
        if query is None:  # out of fresh queries: ask them again
            pool = iter(queries)
            continue
        started = time.perf_counter()
        try:
            ask(conn, query)
            ok = True
        except Exception:  # counted, and the run goes on: a soak reports failures, not stops
            conn.close()
            conn, ok = http.client.HTTPConnection("127.0.0.1", port, timeout=60), False
        with lock:
            period = periods[-1]
            if ok:
                period.searches.append(time.perf_counter() - started)
            else:
                period.errors += 1


def save_one(port: int, article_id: str, n: int) -> None:
    """GET the article, add one similar question, PUT it back with its ETag; wait until the
    new question finds it first."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", f"/api/articles/{article_id}")
    response = conn.getresponse()
    raw = response.read()
    if response.status != 200:
        raise RuntimeError(f"GET {article_id}: {response.status} {raw[:300]!r}")
    body = json.loads(raw)
    # Each save's question is its own: a shared template would let an earlier save's article
    # answer it first once there are many.
    mark = "".join(random.choice("甲乙丙丁戊己庚辛壬癸子丑寅卯辰巳午未申酉戌亥") for _ in range(6))
    question = f"第{n}次保存新增的问法{mark}{random.randrange(10**6)}号"
    edited = {k: body[k] for k in EDIT_FIELDS} | {"similar": [*body["similar"], question],
                                                  "related": [r["id"] for r in body["related"]]}
    headers = {"Content-Type": "application/json", "If-Match": response.getheader("ETag"),
               "Authorization": f"Bearer {TOKEN}"}
    conn.request("PUT", f"/api/articles/{article_id}", body=json.dumps(edited).encode(),
                 headers=headers)
    saved = conn.getresponse()
    text = saved.read()
    if saved.status != 200:
        raise RuntimeError(f"PUT {article_id}: {saved.status} {text[:300]!r}")
    deadline = time.perf_counter() + 60
    while [h["id"] for h in ask(conn, question, k=1)["results"]] != [article_id]:
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{article_id} not found by its new question after 60 s")
        time.sleep(0.01)


def run(work: Path, minutes: float, period_s: float, clients: int, save_every: float,
        log) -> tuple[list[Period], float]:
    content, data = work / "content", work / "data"
    kb = KnowledgeBase(content, data)
    log("indexing if needed")
    kb.reindex()
    ids = [a["id"] for a in kb.articles()]
    sources = synthkb.Sources.from_folders(SOURCES)
    # Distinct queries enough for the whole run, so the query-embedding cache hides nothing.
    queries = synthkb.queries(sources, synthkb.generate(sources, min(len(ids), 10_000)),
                              int(minutes * 60 * QUERIES_PER_S))
    log(f"{len(ids)} articles, {len(queries)} distinct queries")
    env = {k: v for k, v in os.environ.items() if k != "KB_AGENT_TOKENS"}  # searches send none
    env |= {"KB_CONTENT_DIR": str(content), "KB_DATA_DIR": str(data),
            "KB_EDITOR_TOKENS": TOKEN, "PYTHONPATH": str(ROOT)}
    server = start_server([str(Path(sys.executable).parent / "kb"), "serve", "--no-watch"], env)
    periods, lock, stop = [Period()], threading.Lock(), threading.Event()
    rng = random.Random(5)
    try:
        ready_rss = server.rss() / 2**20
        threads = [threading.Thread(target=searcher, args=(server.port, queries[i::clients], stop,
                                                           periods, lock))
                   for i in range(clients)]
        for t in threads:
            t.start()
        started = periods[0].started = time.perf_counter()
        next_save, n = started, 0
        while time.perf_counter() - started < minutes * 60:
            now = time.perf_counter()
            if now >= next_save:
                n += 1
                try:
                    save_one(server.port, rng.choice(ids), n)
                    with lock:
                        periods[-1].saves.append(time.perf_counter() - now)
                except Exception as exc:  # counted and logged; the soak goes on
                    log(f"save {n} failed: {exc}")
                    with lock:
                        periods[-1].errors += 1
                next_save = now + save_every
            if time.perf_counter() - periods[-1].started >= period_s:
                with lock:
                    periods[-1].close(server.rss() / 2**20)
                    log(row(len(periods), periods[-1]))
                    periods.append(Period())
            time.sleep(0.05)
        stop.set()
        for t in threads:
            t.join()
        periods[-1].close(server.rss() / 2**20)
        return [p for p in periods if p.searches or p.saves], ready_rss
    finally:
        stop.set()
        server.stop()


def row(n: int, p: Period) -> str:
    ms = np.array(p.searches) * 1000 if p.searches else np.zeros(1)
    saves = f"{1000 * float(np.median(p.saves)):.0f}" if p.saves else "–"
    return (f"| {n} | {p.seconds:.0f} | {len(p.searches)} | {len(p.searches) / p.seconds:.1f} | "
            f"{np.percentile(ms, 50):.1f} | {np.percentile(ms, 99):.1f} | {len(p.saves)} | "
            f"{saves} | {p.errors} | {p.rss_mb:.0f} |")


def table(periods: list[Period], ready_rss: float) -> str:
    lines = [f"RSS when ready: {ready_rss:.0f} MiB.", "",
             "| period | s | searches | q/s | p50 ms | p99 ms | saves | save to searchable, "
             "median ms | errors | RSS MiB |", "|---|---|---|---|---|---|---|---|---|---|"]
    return "\n".join(lines + [row(n, p) for n, p in enumerate(periods, start=1)])


def write_doc(path: Path, text: str, command: str) -> None:
    doc = path.read_text(encoding="utf-8") if path.exists() else "# Performance\n"
    start = "<!-- soak -->"
    end = "<!-- /soak -->"
    block = (f"{start}\n{text}\n\nProduced by `{command}` on {time.strftime('%Y-%m-%d')}.\n"
             f"{end}")
    if start in doc and end in doc:
        doc = doc[: doc.index(start)] + block + doc[doc.index(end) + len(end) :]
    else:
        doc = doc.rstrip("\n") + "\n\n## Soak\n\n" + block + "\n"
    path.write_text(doc, encoding="utf-8")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True,
                        help="content/ and data/ as bench.speed --work leaves them")
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--period", type=float, default=60, help="seconds a row")
    parser.add_argument("--clients", type=int, default=4, help="agents searching at once")
    parser.add_argument("--save-every", type=float, default=5, help="seconds between saves")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "performance.md")
    args = parser.parse_args(argv)

    def log(message):
        print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)

    periods, ready_rss = run(args.work, args.minutes, args.period, args.clients,
                             args.save_every, log)
    text = table(periods, ready_rss)
    print(text)
    command = (f"python -m bench.soak --work {args.work} --minutes {args.minutes:g} "
               f"--clients {args.clients} --save-every {args.save_every:g}")
    write_doc(args.out, text, command)


if __name__ == "__main__":
    main()
