"""Trying to break it: bad input and bad bodies over real HTTP, hostile articles, load during
reindexing and editor writes, killed builds, a crash before indexing and damaged index files.
docs/reliability.md records what these tests found.

The app is served by uvicorn in a thread on 127.0.0.1 and spoken to over raw sockets
(tests/served.py). Tests not about ranking use HashEmbedder; the load test during a full
reindex uses the real e5 model, because sharing the model between concurrent requests is part
of what it tests."""

import http.client
import io
import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from served import Served, exchange, folder_hash, raw_get, raw_request

from indexer import segments
from indexer.embedders import HashEmbedder
from kb.article import Article, dump_article
from kb.config import Settings
from kb.errors import CorruptIndex, NotFound
from kb.knowledge_base import KnowledgeBase
from kb.store import Store
from kb.watcher import POLL_SECONDS

FIXTURES = Path(__file__).parent / "fixtures"


TOKEN = "reliability-editor-token"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    shutil.copytree(FIXTURES / "content", root / "content")
    kb = KnowledgeBase(root / "content", root / "data", HashEmbedder())  # not about ranking
    kb.reindex()
    with Served(kb, editor_tokens=TOKEN) as s:
        s.root, s.content = root, root / "content"
        s.content_hash = folder_hash(s.content)
        yield s


# Bad input: each gets a 4xx with a reason, never a 5xx or a hang, and content/ is unchanged.

BAD_REQUESTS = {
    # queries
    "empty q": b"/api/search?q=",
    "no q": b"/api/search",
    "whitespace q": b"/api/search?q=%20%20%20",
    "tabs and newlines q": b"/api/search?q=%09%0A%0D%0B",
    "punctuation q": b"/api/search?q=%EF%BC%9F%EF%BC%81...",
    "10 KB ascii q": b"/api/search?q=" + b"a" * 10_000,
    "10 KB cjk q": b"/api/search?q=" + quote("停电" * 1700).encode(),
    "100 KB q": b"/api/search?q=" + b"a" * 100_000,
    "control chars q": b"/api/search?q=%00%01%02%1B%7F",
    "zero-width q": b"/api/search?q=%E2%80%8B%E2%80%8B%EF%BB%BF",
    "invalid utf-8 %ff%fe": b"/api/search?q=%FF%FE",
    "overlong utf-8 slash": b"/api/search?q=%C0%AF",
    "lone surrogate": b"/api/search?q=%ED%A0%80",
    "truncated utf-8": b"/api/search?q=%E5%81",
    "raw non-ascii bytes": b"/api/search?q=\xff\xfe\xe5",
    # k
    "k=0": b"/api/search?q=%E5%81%9C%E7%94%B5&k=0",
    "k=-1": b"/api/search?q=%E5%81%9C%E7%94%B5&k=-1",
    "k=51": b"/api/search?q=%E5%81%9C%E7%94%B5&k=51",
    "k=10**20": b"/api/search?q=%E5%81%9C%E7%94%B5&k=100000000000000000000",
    "k=1.5": b"/api/search?q=%E5%81%9C%E7%94%B5&k=1.5",
    "k=1e3": b"/api/search?q=%E5%81%9C%E7%94%B5&k=1e3",
    "k=abc": b"/api/search?q=%E5%81%9C%E7%94%B5&k=abc",
    "k empty": b"/api/search?q=%E5%81%9C%E7%94%B5&k=",
    "k=%ff": b"/api/search?q=%E5%81%9C%E7%94%B5&k=%FF",
    "category 10 KB": b"/api/search?q=%E5%81%9C%E7%94%B5&category=" + b"c" * 10_000,
    # ids
    "unknown id": b"/api/articles/no-such-article",
    "../etc/passwd": b"/api/articles/../etc/passwd",
    "../../ x3": b"/api/articles/../../../etc/passwd",
    "%2e%2e%2f": b"/api/articles/%2e%2e%2f",
    "..%2f": b"/api/articles/..%2fetc%2fpasswd",
    "%2e%2e%2fpyproject": b"/api/articles/%2e%2e%2f%2e%2e%2fpyproject.toml",
    "double-encoded": b"/api/articles/%252e%252e%252fetc%252fpasswd",
    "encoded backslash": b"/api/articles/..%5c..%5cetc%5cpasswd",
    "overlong-utf8 dots": b"/api/articles/%C0%AE%C0%AE%C0%AF",
    "nul in id": b"/api/articles/repair-home-outage%00",
    "encoded slash in id": b"/api/articles/repair%2fhome",
    "very long id": b"/api/articles/" + b"a" * 10_000,
    "unicode id": b"/api/articles/%E5%81%9C%E7%94%B5",
    "fullwidth id": b"/api/articles/%EF%BD%92%EF%BD%85%EF%BD%90%EF%BD%81%EF%BD%89%EF%BD%92",
    "invalid utf-8 id": b"/api/articles/%FF%FE",
    "hittest bad expected": b"/api/hittest?q=%E5%81%9C%E7%94%B5&expected=..%2f..%2fx",
    "static traversal": b"/static/..%2f..%2fpyproject.toml",
    "static traversal 2": b"/static/%2e%2e/%2e%2e/kb/config.py",
}


@pytest.mark.parametrize("target", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_bad_input_gets_a_4xx_with_a_reason(served, target):
    status, body = raw_get(served.port, target)
    assert 400 <= status < 500, (status, body[:300])
    assert body.strip(), "a refusal must say why"
    if body.startswith(b"{"):
        assert json.loads(body)["detail"]
    assert b"[project]" not in body and b"root:" not in body and b"class Settings" not in body
    assert folder_hash(served.content) == served.content_hash


def test_a_long_query_arriving_in_pieces_gets_the_same_422(served):
    """The HTTP parser sees the request line before its end: it must wait for the rest, not
    answer 400 and reset the connection."""
    received = send_in_two(served.port, b"a" * 40_000, b"a" * 20_000)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"422", head
    assert "limit is 200" in json.loads(body)["detail"]


def test_a_request_line_past_64_kib_gets_a_400_with_a_reason(served):
    """httptools (server/tuning.py) cannot hold a URL of more than 65,535 bytes: such a request
    is refused by the HTTP layer, with a reason, and the server goes on answering."""
    received = send_in_two(served.port, b"a" * 40_000, b"a" * 60_000)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"400", head
    assert b"Invalid HTTP request" in body
    status, body = raw_get(served.port, b"/api/search?q=%E5%81%9C%E7%94%B5")
    assert status == 200 and json.loads(body)["results"]


def send_in_two(port: int, first: bytes, rest: bytes) -> bytes:
    """GET /api/search?q=<first><rest>, the query sent in two pieces 0.3 s apart."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(b"GET /api/search?q=" + first)
        time.sleep(0.3)  # the server reads what has come so far
        s.sendall(rest + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        received = b""
        while chunk := s.recv(65536):
            received += chunk
    return received


@pytest.mark.parametrize("target", [
    b"/api/search?q=%E5%81%9C%E7%94%B5%00%07",  # 停电 with control characters: they are dropped
    b"/api/search?q=%E5%81%9C%E7%94%B5&category=%FF",  # no such category: no results
    b"/api/search?q=%F0%A0%80%80",  # a CJK extension B character
    b"/api/search?q=%1B%5B31m%1B%5B0m",  # an ANSI colour escape: the letters remain
])
def test_odd_but_meaningful_queries_are_answered(served, target):
    status, body = raw_get(served.port, target)
    assert status == 200 and "results" in json.loads(body)


def test_bad_input_leaves_the_server_healthy(served):
    for target in BAD_REQUESTS.values():
        raw_get(served.port, target)
    status, body = raw_get(served.port, b"/api/search?q=%E5%81%9C%E7%94%B5")
    assert status == 200 and json.loads(body)["results"]
    assert folder_hash(served.content) == served.content_hash


# Bad bodies, to every route that takes one. The token is right and a PUT says If-Match: *, so
# only the body stands between a request and a write; content/ must stay as it was.

JSON = b"application/json"
ARTICLE_BODY = {"title": "恶意请求测试文章", "category": "测试", "answer": "您好，这是一篇测试文章。"}
EDITOR = {b"Authorization": b"Bearer " + TOKEN.encode(), b"If-Match": b"*"}
LIMIT = Settings.model_fields["max_body_bytes"].default
WRITES = {
    "POST articles": (b"POST", b"/api/articles"),
    "PUT article": (b"PUT", b"/api/articles/repair-home-outage"),
    "POST feedback": (b"POST", b"/api/feedback"),
    "POST events": (b"POST", b"/api/events"),
}
BAD_BODIES = {
    "empty": (JSON, b""),
    "malformed json": (JSON, b'{"title": "x", "answer": '),
    "two json values": (JSON, b'{"title": "x"} {"answer": "y"}'),
    "invalid utf-8": (JSON, b'{"title": "\xff\xfe\xe5"}'),
    "json array": (JSON, b'[{"title": "x"}]'),
    "json string": (JSON, b'"an article"'),
    "json null": (JSON, b"null"),
    "json 1e999": (JSON, b"1e999"),
    "json NaN": (JSON, b"NaN"),
    "nested 100,000 deep": (JSON, b"[" * 100_000 + b"]" * 100_000),
    "nested 900 deep": (JSON, b'{"title": ' + b"[" * 900 + b"]" * 900 + b"}"),
    "nested 300 deep": (JSON, b'{"title": ' + b'{"a": ' * 300 + b"1" + b"}" * 301),
    "no content type, malformed": (None, b"{title"),
    "text/plain article": (b"text/plain", json.dumps(ARTICLE_BODY | {"id": "plain-text"}).encode()),
    "form-encoded": (b"application/x-www-form-urlencoded", b"title=x&category=y&answer=z"),
    "multipart": (b"multipart/form-data; boundary=b",
                  b'--b\r\nContent-Disposition: form-data; name="title"\r\n\r\nx\r\n--b--\r\n'),
    "xml": (b"application/xml", b"<article><title>x</title></article>"),
}


@pytest.mark.parametrize("content_type, body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
@pytest.mark.parametrize("method, target", WRITES.values(), ids=WRITES.keys())
def test_a_bad_body_gets_a_4xx_with_a_reason(served, method, target, content_type, body):
    headers = EDITOR | ({b"Content-Type": content_type} if content_type else {})
    status, answer = raw_request(served.port, method, target, headers, body)
    assert 400 <= status < 500, (status, answer[:300])
    assert json.loads(answer)["detail"]
    assert folder_hash(served.content) == served.content_hash


def request_head(method: bytes, target: bytes, *lines: bytes) -> bytes:
    return b"\r\n".join([method + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1",
                         b"Content-Type: application/json",
                         *(name + b": " + value for name, value in EDITOR.items()), *lines])


@pytest.mark.parametrize("method, target", WRITES.values(), ids=WRITES.keys())
def test_an_oversized_body_is_413_before_it_is_read(served, method, target):
    """Content-Length is 1 byte over the limit and no body follows: a server that read the body
    before deciding would wait for it until the socket timeout fails the test."""
    head = request_head(method, target, b"Content-Length: " + str(LIMIT + 1).encode())
    status, _, answer = exchange(served.port, head + b"\r\n\r\n")
    assert status == 413, answer[:300]
    detail = json.loads(answer)["detail"]
    assert "KB_MAX_BODY_BYTES" in detail and f"{LIMIT + 1:,} bytes" in detail
    assert folder_hash(served.content) == served.content_hash


@pytest.mark.parametrize("method, target", WRITES.values(), ids=WRITES.keys())
def test_an_oversized_chunked_body_is_413_as_it_arrives(served, method, target):
    """No Content-Length: the bytes are counted as the chunks come. The body ends 1 byte over
    the limit without its closing chunk, so only counting can answer before the timeout."""
    piece = b"x" * 65_536
    chunks = (b"10000\r\n" + piece + b"\r\n") * (LIMIT // len(piece)) + b"1\r\nx\r\n"
    head = request_head(method, target, b"Transfer-Encoding: chunked")
    status, _, answer = exchange(served.port, head + b"\r\n\r\n" + chunks)
    assert status == 413, answer[:300]
    assert f"over {LIMIT:,} bytes" in json.loads(answer)["detail"]
    assert folder_hash(served.content) == served.content_hash


def test_a_body_under_the_limit_is_read_and_validated(served):
    body = json.dumps(ARTICLE_BODY | {"id": "big-answer", "answer": "长" * (LIMIT // 4)},
                      ensure_ascii=False).encode()
    assert LIMIT // 2 < len(body) < LIMIT
    status, answer = raw_request(served.port, b"POST", b"/api/articles",
                                 EDITOR | {b"Content-Type": JSON}, body)
    assert status == 422 and "at most 20000 characters" in answer.decode()
    assert folder_hash(served.content) == served.content_hash


ID_ATTACKS = {name: t for name, t in BAD_REQUESTS.items() if t.startswith(b"/api/articles/")}
ID_ATTACKS |= {
    "%2E%2E%2F upper case": b"/api/articles/%2E%2E%2Fcontent%2Frepair%2Frepair-home-outage",
    "..%2f to an article": b"/api/articles/..%2frepair%2frepair-home-outage",
    ".%2e": b"/api/articles/.%2e",
    "%2e%2e": b"/api/articles/%2e%2e",
    "%2e%2e%2f%2e%2e%2fREADME": b"/api/articles/%2e%2e%2f%2e%2e%2fREADME",
    "id.md": b"/api/articles/repair-home-outage.md",
}


@pytest.mark.parametrize("target", ID_ATTACKS.values(), ids=ID_ATTACKS.keys())
@pytest.mark.parametrize("method", [b"PUT", b"DELETE"])
def test_a_malicious_id_cannot_write_or_delete(served, method, target):
    body = json.dumps(ARTICLE_BODY).encode() if method == b"PUT" else b""
    status, answer = raw_request(served.port, method, target, EDITOR | {b"Content-Type": JSON},
                                 body)
    assert 400 <= status < 500, (status, answer[:300])
    assert answer.strip(), "a refusal must say why"
    assert folder_hash(served.content) == served.content_hash
    assert sorted(p.name for p in served.root.iterdir()) == ["content", "data"]


# Articles cannot inject script.

HOSTILE_BODIES = {
    "script": "<script>alert(1)</script>",
    "img onerror": '<img src=x onerror="alert(1)">',
    "iframe": '<iframe src="https://evil.example/"></iframe>',
    "svg onload": "<svg onload=alert(1)><circle r=1 /></svg>",
    "javascript link": "[点这里](javascript:alert(1))",
    "mixed-case javascript": '<a href="JaVaScRiPt:alert(1)">x</a>',
    "entity javascript": '<a href="jav&#x09;ascript:alert(1)">x</a>',
    "data url": "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "vbscript": '<a href="vbscript:msgbox(1)">x</a>',
    "onclick": '<p onclick="alert(1)" style="color:red">x</p>',
    "object embed": '<object data="x.swf"></object><embed src="x.swf">',
    "form": '<form action="https://evil.example/"><input name=a></form>',
    "style tag": "<style>body{background:url(javascript:alert(1))}</style>",
    "meta refresh": '<meta http-equiv="refresh" content="0;url=https://evil.example/">',
    "markdown image": "![x](https://evil.example/x.png)",
    "unclosed": "<scr<script>ipt>alert(1)</script>",
}
FORBIDDEN = re.compile(
    r"<\s*(script|iframe|img|svg|object|embed|form|input|style|meta)|\son\w+\s*=|javascript:"
    r"|vbscript:|data:text|style\s*=", re.IGNORECASE)


def test_articles_cannot_inject_script(tmp_path):
    content = tmp_path / "content"
    shutil.copytree(FIXTURES / "content", content)
    for n, payload in enumerate(HOSTILE_BODIES.values()):
        (content / "repair" / f"hostile-{n}.md").write_text(
            f"---\nid: hostile-{n}\ntitle: 恶意标记测试{n}号\ncategory: 测试\n---\n"
            f"您好，安全测试{n}。{payload}\n\n## 依据\n依据{n}。{payload}\n", encoding="utf-8")
    kb = KnowledgeBase(content, tmp_path / "data", HashEmbedder())  # not about ranking
    assert not kb.reindex().errors
    with Served(kb) as s:
        for n, name in enumerate(HOSTILE_BODIES):
            status, body = raw_get(s.port, f"/api/articles/hostile-{n}".encode())
            article = json.loads(body)
            status_s, body_s = raw_get(s.port, f"/api/search?k=50&q={quote(f'恶意标记测试{n}号')}".encode())
            hit = next(r for r in json.loads(body_s)["results"] if r["id"] == f"hostile-{n}")
            for html in (article["answer_html"], article["basis_html"], hit["answer_html"],
                         hit["basis_html"]):
                assert not FORBIDDEN.search(html), (name, html)
            assert f"安全测试{n}" in article["answer_html"] and f"依据{n}" in article["basis_html"]


# Under load: 16 searchers during a full reindex, a burst of file edits and a burst of editor PUTs.

PROBE = "---\nid: {id}\ntitle: 负载探针文章{t}\ncategory: 测试\n---\n您好，探针版本 {v} 号。\n"
NEW = ("---\nid: load-new-{i}\ntitle: 第{i}个新增的问题怎么办理\ncategory: 测试\n---\n"
       "您好，这是新增文章{i}。\n")
SEARCHERS, MIN_EACH, MAX_EACH, EDITS, PUTS = 16, 60, 400, 8, 16
QUERIES = ["家里突然没电了", "电费怎么交", "抢修多久能到", "计划停电通知", "欠费停电怎么恢复",
           "电费为什么这么高", "负载探针", "新增的问题"]


def snapshot_state(answers: list[dict]) -> tuple[frozenset, tuple]:
    """What a result list says about its snapshot: the article set and each probe's version.
    With k=50 every article of these small folders is a candidate, so a list holds them all."""
    probes = tuple(sorted((a["id"], a["answer"]) for a in answers
                          if a["id"].startswith("load-probe")))
    return frozenset(a["id"] for a in answers), probes


@dataclass
class Seen:
    """What the searcher threads got: each answer's snapshot_state, when, and any failure."""

    states: list = field(default_factory=list)
    stamps: list[float] = field(default_factory=list)
    errors: list = field(default_factory=list)


def search_while(writing: threading.Event, port: int, n: int, seen: Seen) -> None:
    """One agent: searches over keep-alive until the writer is done (at least MIN_EACH)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    done = 0
    while done < MAX_EACH and (done < MIN_EACH or writing.is_set()):
        q = quote(QUERIES[(n + done) % len(QUERIES)])
        try:
            conn.request("GET", f"/api/search?k=50&q={q}")
            r = conn.getresponse()
            body = r.read()
            if r.status != 200:
                seen.errors.append((r.status, body[:200]))
            else:
                seen.states.append(snapshot_state(json.loads(body)["results"]))
                seen.stamps.append(time.monotonic())
        except Exception as exc:  # noqa: BLE001 - every failure counts as an error
            seen.errors.append(repr(exc))
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        done += 1
    conn.close()


def under_load(port: int, write) -> Seen:
    """Run write() while SEARCHERS agents search; what they saw."""
    seen, writing = Seen(), threading.Event()
    writing.set()

    def writer():
        try:
            write()
        finally:
            writing.clear()

    threads = [threading.Thread(target=search_while, args=(writing, port, n, seen))
               for n in range(SEARCHERS)]
    for t in threads:
        t.start()
    thread = threading.Thread(target=writer)
    thread.start()
    thread.join(timeout=300)
    for t in threads:
        t.join(timeout=300)
    return seen


def test_sixteen_searchers_during_full_reindex_and_edits(tmp_path, e5):
    content = tmp_path / "content"
    shutil.copytree(FIXTURES / "content", content)
    (content / "repair" / "load-probe.md").write_text(PROBE.format(id="load-probe", t="", v=0), encoding="utf-8")
    kb = KnowledgeBase(content, tmp_path / "data", e5)
    kb.reindex()
    states = {snapshot_state(kb.articles())}
    phases: dict[str, tuple[float, float]] = {}

    def write():
        t0 = time.monotonic()
        kb.reindex(full=True)
        states.add(snapshot_state(kb.articles()))
        phases["full"] = (t0, time.monotonic())
        t0 = time.monotonic()
        for i in range(1, EDITS + 1):
            (content / "repair" / f"load-new-{i}.md").write_text(NEW.format(i=i),
                                                                 encoding="utf-8")
            (content / "repair" / "load-probe.md").write_text(PROBE.format(id="load-probe", t="", v=i),
                                                              encoding="utf-8")
            kb.reindex()
            states.add(snapshot_state(kb.articles()))
        phases["edits"] = (t0, time.monotonic())

    with Served(kb) as s:
        seen = under_load(s.port, write)
    assert not seen.errors, seen.errors[:5]
    assert len(states) == EDITS + 1  # the full build holds what the first did; one per edit
    torn = [x for x in seen.states if x not in states]
    assert not torn, torn[:3]
    during = {name: sum(a <= t <= b for t in seen.stamps) for name, (a, b) in phases.items()}
    print(f"\nload: {len(seen.states)} searches by {SEARCHERS} threads, {len(seen.errors)} "
          f"errors, {len(set(seen.states))} snapshots seen of {len(states)}, "
          f"{during['full']} during the full reindex, {during['edits']} during {EDITS} edits")
    assert during["full"] > 0 and during["edits"] > 0


def test_sixteen_searchers_during_a_burst_of_editor_puts(tmp_path):
    """PUTs as the editor page sends them (token, If-Match from the last answer), alternating
    between two probe articles, so an answer that mixed two snapshots would pair one probe's
    new version with the other's old one. HashEmbedder: this is about snapshots, not ranking."""
    content = tmp_path / "content"
    shutil.copytree(FIXTURES / "content", content)
    probes = {"load-probe-a": "甲", "load-probe-b": "乙"}
    for probe, t in probes.items():
        (content / "repair" / f"{probe}.md").write_text(PROBE.format(id=probe, t=t, v=0),
                                                        encoding="utf-8")
    kb = KnowledgeBase(content, tmp_path / "data", HashEmbedder())
    kb.reindex()
    states = {snapshot_state(kb.articles())}
    puts: list[tuple[int, bytes]] = []
    window: list[float] = []

    def write():
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
        etags = {}
        for probe in probes:
            conn.request("GET", f"/api/articles/{probe}")
            r = conn.getresponse()
            r.read()
            etags[probe] = r.getheader("ETag")
        window.append(time.monotonic())
        for i in range(1, PUTS + 1):
            probe = list(probes)[i % 2]
            body = {"title": f"负载探针文章{probes[probe]}", "category": "测试",
                    "answer": f"您好，探针版本 {i} 号。"}
            conn.request("PUT", f"/api/articles/{probe}", body=json.dumps(body).encode(),
                         headers={"Authorization": f"Bearer {TOKEN}", "If-Match": etags[probe],
                                  "Content-Type": "application/json"})
            r = conn.getresponse()
            puts.append((r.status, r.read()[:200]))
            etags[probe] = r.getheader("ETag")
            states.add(snapshot_state(kb.articles()))  # the PUT answered once it was live
        window.append(time.monotonic())
        conn.close()

    with Served(kb, editor_tokens=TOKEN) as s:
        seen = under_load(s.port, write)
    assert [status for status, _ in puts] == [200] * PUTS, puts
    assert not seen.errors, seen.errors[:5]
    assert len(states) == PUTS + 1
    torn = [x for x in seen.states if x not in states]
    assert not torn, torn[:3]
    during = sum(window[0] <= t <= window[1] for t in seen.stamps)
    print(f"\nload: {len(seen.states)} searches by {SEARCHERS} threads, {len(seen.errors)} "
          f"errors, {len(set(seen.states))} snapshots seen of {len(states)}, {during} during "
          f"{PUTS} editor PUTs")
    assert during > 0 and len(set(seen.states)) > 1


# Faults: kill -9 of a build, damaged index files, a crash before indexing, SQLite settings.


def synthetic_articles(folder: Path, n: int) -> None:
    """n extra articles, so a build lasts long enough to be killed in every phase."""
    rng = random.Random(95598)
    things = ["电表", "电费", "停电", "报修", "过户", "增容", "发票", "光伏", "充电桩", "预付费"]
    doing = ["怎么办理", "多久能好", "需要什么材料", "在哪里查", "为什么不对", "能不能撤销"]
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        a, b = rng.choice(things), rng.choice(doing)
        article = Article(
            id=f"synth-{i}", title=f"{a}{b}（第{i}问）", category=f"合成{i % 7}",
            answer=f"您好，关于{a}{b}，请按第{i}条规定办理。" * 4,
            similar=tuple(f"{rng.choice(things)}{rng.choice(doing)}{i}-{j}" for j in range(3)),
        )
        (folder / f"synth-{i}.md").write_text(dump_article(article), encoding="utf-8")


def kb_command(*args: str, data: Path, content: Path) -> subprocess.Popen:
    env = {**os.environ, "KB_EMBEDDER": "hash:64", "KB_CONTENT_DIR": str(content),
           "KB_DATA_DIR": str(data)}
    return subprocess.Popen([sys.executable, "-c", "from kb.cli import main; main()", *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def fresh_load(content: Path, data: Path) -> KnowledgeBase:
    """A KnowledgeBase as a new process would see the index (no segments cached in memory)."""
    segments._loaded.clear()
    kb = KnowledgeBase(content, data, HashEmbedder())
    kb.searcher()
    return kb


def test_kill_9_during_full_builds_leaves_the_served_index_intact(tmp_path):
    content, data = tmp_path / "content", tmp_path / "data"
    shutil.copytree(FIXTURES / "content", content)
    synthetic_articles(content / "synth", 400)
    start = time.monotonic()
    proc = kb_command("index", "--full", data=data, content=content)
    assert proc.wait(timeout=120) == 0, proc.stderr.read().decode()
    took = time.monotonic() - start
    served = KnowledgeBase(content, data, HashEmbedder())
    live, count = served.stats()["snapshot"], served.stats()["articles"]
    assert count == 406

    rng = random.Random(8)
    landed = {"before the build wrote a snapshot": 0, "while a snapshot was being written": 0,
              "after the build had finished": 0}
    for _ in range(6):
        proc = kb_command("index", "--full", data=data, content=content)
        time.sleep(rng.uniform(0.3, took))
        finished = proc.poll() is not None
        partial = any(not (p / "manifest.json").exists() for p in (data / "index").glob("snap-*"))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        landed["after the build had finished" if finished else
               "while a snapshot was being written" if partial else
               "before the build wrote a snapshot"] += 1
        # The process that was serving goes on serving; a new one loads the live snapshot.
        assert len(served.search("电费怎么交", 3)) == 3
        assert served.stats()["articles"] == count
        assert fresh_load(content, data).stats()["articles"] == count
        with sqlite3.connect(data / "kb.sqlite") as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    proc = kb_command("index", "--full", data=data, content=content)
    assert proc.wait(timeout=120) == 0, proc.stderr.read().decode()
    after = fresh_load(content, data)
    assert after.stats()["articles"] == count and after.stats()["snapshot"] != live
    unfinished = [p for p in (data / "index").glob("snap-*") if not (p / "manifest.json").exists()]
    assert not unfinished  # the completed build removed what the killed ones left
    print(f"\nkill -9: build takes {took:.1f}s; kills {landed}")
    assert sum(landed.values()) == 6



def npy_bytes(array) -> bytes:
    """A well-formed .npy file's bytes: damage that parses."""
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()

DAMAGE = {
    "truncated dense.faiss": ("dense.faiss", lambda b: b[: len(b) // 2]),
    "empty dense.faiss": ("dense.faiss", lambda b: b""),
    "garbage manifest.json": ("manifest.json", lambda b: b"\x8f{garbage" + b[:10]),
    "truncated manifest.json": ("manifest.json", lambda b: b[: len(b) // 2]),
    "truncated articles.json": ("articles.json", lambda b: b[: len(b) // 2]),
    "garbage passages.json": ("passages.json", lambda b: os.urandom(len(b))),
    "truncated words.npz": ("words.npz", lambda b: b[: len(b) // 2]),
    "empty chars.idf.npy": ("chars.idf.npy", lambda b: b""),
    "truncated chars.vocab.txt": ("chars.vocab.txt", lambda b: b[: len(b) // 2 - 1]),
    "garbage dictionary.json": ("dictionary.json", lambda b: b"\xff\xfe" + b),
    "truncated ranker.npz": ("ranker.npz", lambda b: b[:100]),
    "truncated questions.npy": ("questions.npy", lambda b: b[: len(b) // 2]),
    "short questions.npy": ("questions.npy", lambda b: npy_bytes(np.load(io.BytesIO(b))[:-1])),
    "missing passages.json": ("passages.json", None),
}


@pytest.mark.parametrize("name, damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_damaged_index_file_says_how_to_rebuild(hash_kb, monkeypatch, name, damage):
    hash_kb.reindex()
    path = hash_kb.index_dir / hash_kb.stats()["snapshot"] / name
    if damage is None:
        path.unlink()
    else:
        path.write_bytes(damage(path.read_bytes()))
    monkeypatch.setattr(segments, "_loaded", {})  # as a new process: nothing cached
    fresh = KnowledgeBase(hash_kb.content_dir, hash_kb.data_dir, HashEmbedder())
    with pytest.raises(CorruptIndex, match="kb index --full"):
        fresh.search("停电")
    with Served(fresh) as s:
        for target in (b"/readyz", b"/api/search?q=%E5%81%9C%E7%94%B5"):
            status, body = raw_get(s.port, target)
            assert status == 503 and "kb index --full" in json.loads(body)["detail"]
        fresh.reindex(full=True)  # what the message says to do
        status, body = raw_get(s.port, b"/api/search?q=%E5%81%9C%E7%94%B5")
        assert status == 200 and json.loads(body)["results"]


CRASHED = ("---\nid: crash-left-this\ntitle: 变压器嗡嗡响声音很大\ncategory: 故障报修\n---\n"
           "您好，我为您登记，供电公司会派人检查。\n")


def wait_for(predicate, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_a_crash_before_indexing_is_repaired_at_the_next_start_without_the_watcher(hash_kb,
                                                                                  content):
    """As `kb serve --no-watch` after a crash between writing an article file and indexing it:
    the start indexes the file in the background and serves the old index meanwhile."""
    hash_kb.reindex()
    (content / "repair" / "crash-left-this.md").write_text(CRASHED, encoding="utf-8")
    with pytest.raises(NotFound):
        hash_kb.get("crash-left-this")
    with Served(hash_kb, watch=False) as s:
        status, body = raw_get(s.port, b"/readyz")
        assert status == 200 and json.loads(body)["ready"]
        assert wait_for(lambda: raw_get(s.port, b"/api/articles/crash-left-this")[0] == 200)
        status, body = raw_get(s.port, b"/api/search?q=" + quote("变压器嗡嗡响声音很大").encode())
        assert json.loads(body)["results"][0]["id"] == "crash-left-this"
        # One pass at the start, not a watcher: a file written now waits for `kb index`.
        (content / "repair" / "later.md").write_text(
            CRASHED.replace("crash-left-this", "later").replace("变压器", "电线杆"), "utf-8")
        time.sleep(3 * POLL_SECONDS)
        assert raw_get(s.port, b"/api/articles/later")[0] == 404


def test_sqlite_store_uses_wal_and_a_busy_timeout(hash_kb):
    hash_kb.reindex()
    with sqlite3.connect(hash_kb.data_dir / "kb.sqlite") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # stored in the file
    store = Store(hash_kb.data_dir / "kb.sqlite")
    try:
        assert store.db.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
    finally:
        store.close()
