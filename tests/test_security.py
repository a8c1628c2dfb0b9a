"""Auth and cross-origin access: editor tokens never reach a log line or an answer, and CORS is
off unless KB_CORS_ORIGINS names an origin.

The log test serves the real app under uvicorn (tests/served.py) with its access log on and
reads every record the server wrote, formatted as uvicorn writes them. HashEmbedder throughout:
nothing here is about ranking."""

import json
import logging

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from served import Served, exchange, request_bytes
from uvicorn.logging import AccessFormatter, DefaultFormatter

from indexer.embedders import HashEmbedder
from kb.config import Settings
from kb.knowledge_base import KnowledgeBase
from server.app import create_app

RIGHT = "right-token-7f3a9c0e51"
WRONG = "wrong-token-b2e41d8a37"
ARTICLE = b"/api/articles/repair-home-outage"
OPS, EVIL = "https://ops.example.cn", "https://evil.example"


@pytest.fixture(scope="module")
def indexed(indexed_copy) -> KnowledgeBase:
    return indexed_copy("security", HashEmbedder())


# Tokens.


@pytest.fixture
def server_log(caplog):
    """Every record of the server's loggers. uvicorn's own loggers may not propagate (its
    default logging config turns that off, and another test may have applied it), so the
    capture is attached to them directly."""
    caplog.set_level(logging.DEBUG)
    names = ("uvicorn", "uvicorn.error", "uvicorn.access")
    for name in names:
        logging.getLogger(name).addHandler(caplog.handler)
    yield caplog
    for name in names:
        logging.getLogger(name).removeHandler(caplog.handler)


def formatted(records: list[logging.LogRecord]) -> str:
    """The records as `kb serve` prints them: uvicorn's access and default formats. A record
    that reached the capture twice (directly and by propagation) is shown once."""
    records = list({id(r): r for r in records}.values())
    access = AccessFormatter('%(levelprefix)s %(client_addr)s - "%(request_line)s" '
                             "%(status_code)s", use_colors=False)
    default = DefaultFormatter("%(levelprefix)s %(name)s %(message)s", use_colors=False)
    return "\n".join((access if r.name == "uvicorn.access" else default).format(r)
                     for r in records)


def editor_requests(etag: bytes) -> list[tuple[bytes, bytes, dict, bytes]]:
    """(method, target, headers, body): writes that succeed and fail in each way, with the
    right token, wrong ones and tokens in the wrong place."""
    def auth(token: str, scheme: str = "Bearer") -> dict:
        return {b"Authorization": f"{scheme} {token}".encode(), b"Content-Type": b"application/json"}

    article = json.dumps({"title": "家里没电了怎么办", "category": "故障报修",
                          "answer": "您好，请您先看一下家里的总开关。"}, ensure_ascii=False).encode()
    return [
        (b"PUT", ARTICLE, auth(RIGHT) | {b"If-Match": etag}, article),  # 200
        (b"PUT", ARTICLE, auth(RIGHT), article),  # 428: no If-Match
        (b"PUT", ARTICLE, auth(RIGHT) | {b"If-Match": b'"stale"'}, article),  # 412
        (b"POST", b"/api/articles", auth(RIGHT), b'{"title": '),  # 422: malformed
        (b"POST", b"/api/articles", auth(RIGHT),
         article.replace(b"{", b'{"id": "repair-home-outage", ', 1)),  # 409
        (b"DELETE", b"/api/articles/no-such-article", auth(RIGHT) | {b"If-Match": b"*"}, b""),
        (b"POST", b"/api/render", auth(RIGHT) | {b"Content-Length": b"99999999"}, b""),  # 413:
        # declared, never sent
        (b"GET", b"/api/search?q=%E5%81%9C%E7%94%B5", auth(RIGHT), b""),  # a read, token sent
        (b"PUT", ARTICLE, auth(WRONG) | {b"If-Match": b"*"}, article),  # 403
        (b"PUT", ARTICLE, auth(RIGHT + "x") | {b"If-Match": b"*"}, article),  # 403, a prefix
        (b"DELETE", ARTICLE, auth(RIGHT[:-1]) | {b"If-Match": b"*"}, b""),  # 403
        (b"POST", b"/api/render", auth(RIGHT, "Basic"), b'{"markdown": "x"}'),  # 401
        (b"POST", b"/api/render", auth(WRONG, "bearer"), b'{"markdown": "x"}'),  # 403
        (b"POST", b"/api/render", {b"Authorization": RIGHT.encode()}, b'{"markdown": "x"}'),
        (b"POST", b"/api/eval-queries", auth(WRONG), b"[not json"),  # 422 or 403
    ]


def test_tokens_never_reach_the_log_or_an_answer(indexed, server_log):
    etag = indexed.get("repair-home-outage")["content_hash"]
    options = {"log_config": None, "log_level": "debug", "access_log": True}
    statuses, answers = [], []
    with Served(indexed, options, editor_tokens=RIGHT) as s:
        for method, target, headers, body in editor_requests(f'"{etag}"'.encode()):
            status, head, answer = exchange(s.port, request_bytes(method, target, headers, body))
            statuses.append(status)
            answers.append(head + b"\r\n\r\n" + answer)
    assert statuses == [200, 428, 412, 422, 409, 404, 413, 200, 403, 403, 403, 401, 403, 401,
                        statuses[-1]] and statuses[-1] in (403, 422)
    log = formatted(server_log.records)
    assert log.count('"PUT /api/articles/repair-home-outage HTTP/1.1"') == 5  # it saw them all
    assert '"PUT /api/articles/repair-home-outage HTTP/1.1" 403' in log
    for token in (RIGHT, WRONG, RIGHT[:-1]):
        assert token not in log
        assert not [a for a in answers if token.encode() in a]


def test_a_token_in_a_page_address_is_blanked_in_the_access_log(indexed, server_log):
    options = {"log_config": None, "log_level": "info", "access_log": True}
    with Served(indexed, options, agent_tokens=RIGHT, editor_tokens=WRONG) as s:
        statuses = [exchange(s.port, request_bytes(b"GET", target, {}, b""))[0]
                    for target in (f"/?token={RIGHT}".encode(),
                                   f"/reports?token={RIGHT}&x=1".encode(),
                                   f"/reports/2026-11?token={WRONG}".encode())]
    assert statuses == [200, 303, 303]
    log = formatted(server_log.records)
    assert '"GET /?token=*** HTTP/1.1" 200' in log
    assert '"GET /reports?token=***&x=1 HTTP/1.1" 303' in log
    assert RIGHT not in log and WRONG not in log



def test_a_phone_or_id_number_in_a_search_is_masked_in_the_access_log(indexed, server_log):
    from urllib.parse import quote

    options = {"log_config": None, "log_level": "info", "access_log": True}
    asked = ["13812345678停电了", "身份证110101199003071234 电费", "138.1234.5678"]
    with Served(indexed, options) as s:
        statuses = [exchange(s.port, request_bytes(
            b"GET", f"/api/search?q={quote(q)}&k=3".encode(), {}, b""))[0] for q in asked]
    assert statuses == [200, 200, 200]
    log = formatted(server_log.records)
    for number in ("13812345678", "110101199003071234", "138.1234.5678"):
        assert number not in log
    assert f'"GET /api/search?q={quote("[手机号]停电了", safe="")}&k=3 HTTP/1.1" 200' in log


# Cross-origin access.


def client(kb: KnowledgeBase, **settings) -> TestClient:
    return TestClient(create_app(Settings(content_dir=kb.content_dir, data_dir=kb.data_dir,
                                          editor_tokens=RIGHT, **settings), kb))


def preflight(c: TestClient, origin: str, method: str = "PUT"):
    return c.options(ARTICLE.decode(), headers={
        "Origin": origin, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, if-match, content-type"})


def test_without_cors_origins_no_origin_is_allowed(indexed):
    with client(indexed) as c:
        for origin in (EVIL, OPS, "null"):
            r = preflight(c, origin)
            assert r.status_code == 405 and "access-control-allow-origin" not in r.headers
            r = c.get("/api/search", params={"q": "停电"}, headers={"Origin": origin})
            assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


def test_a_configured_origin_is_allowed_and_no_other(indexed):
    with client(indexed, cors_origins=f" {OPS}/ ") as c:
        r = preflight(c, OPS)
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == OPS
        assert "PUT" in r.headers["access-control-allow-methods"]
        assert "if-match" in r.headers["access-control-allow-headers"].lower()
        assert "access-control-allow-credentials" not in r.headers  # tokens, never cookies
        r = c.get(ARTICLE.decode(), headers={"Origin": OPS})
        assert r.headers["access-control-allow-origin"] == OPS
        assert "etag" in r.headers["access-control-expose-headers"].lower()
        for other in (EVIL, "http://ops.example.cn", "https://ops.example.cn.evil.example",
                      "https://evil.ops.example.cn", "null"):
            r = preflight(c, other)
            assert r.status_code == 400 and "access-control-allow-origin" not in r.headers
            r = c.get("/api/search", params={"q": "停电"}, headers={"Origin": other})
            assert "access-control-allow-origin" not in r.headers


def test_several_origins_are_read_from_the_setting():
    settings = Settings(cors_origins=f"{OPS}, https://kb.example.cn/")
    assert settings.cors_origin_list() == [OPS, "https://kb.example.cn"]
    assert Settings().cors_origin_list() == []


@pytest.mark.parametrize("value", ["*", "ops.example.cn", "https://ops.example.cn/path",
                                   "ftp://ops.example.cn", f"{OPS}, *"])
def test_a_cors_setting_that_is_not_an_origin_stops_the_start(value):
    with pytest.raises(ValidationError, match="KB_CORS_ORIGINS: .* is not an origin"):
        Settings(cors_origins=value)
