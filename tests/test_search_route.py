"""GET /api/search's fast path (server/search_route.py) on the real app, real files and the real
e5 model: it answers well-formed searches with what the route would answer, and leaves every
other request to the route, whose statuses and reasons stay as they were."""

import sqlite3

import pytest
from fastapi.testclient import TestClient

import server.app
from kb.config import Settings
from kb.knowledge_base import KnowledgeBase
from kb.querylog import LOG_FILE
from server.app import create_app
from server.schemas import SearchResponse

AGENT, EDITOR = "agent-token-1", "editor-token-1"
OPS = "https://ops.example.cn"


@pytest.fixture(scope="module")
def kb(indexed_copy, e5):
    return indexed_copy("search-route", e5)


@pytest.fixture
def route_calls(monkeypatch):
    """How many requests reached the FastAPI route (the fast path calls search_route.answer
    itself, the route through server.app's name for it)."""
    calls = []
    real = server.app.answer

    def counted(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(server.app, "answer", counted)
    return calls


def client_for(kb, **settings) -> TestClient:
    return TestClient(create_app(Settings(content_dir=kb.content_dir, data_dir=kb.data_dir,
                                          editor_tokens=EDITOR, **settings), kb))


@pytest.fixture(scope="module")
def client(kb):
    with client_for(kb) as c:
        yield c


def without_id(body: dict) -> dict:
    return {**body, "query_id": None}


@pytest.mark.parametrize("params", [
    {"q": "家里停电了怎么办"},
    {"q": "电费怎么交", "k": "3"},
    {"q": "电费", "k": "50", "category": "缴费渠道"},
    {"q": "欠费停电交了钱多久来电", "agent": "A1001"},
    {"q": "电价", "category": ""},
])
def test_a_well_formed_search_gets_the_routes_answer_without_the_route(client, route_calls,
                                                                       params):
    fast = client.get("/api/search", params=params)
    assert fast.status_code == 200 and route_calls == []
    assert fast.headers["content-type"] == "application/json"
    SearchResponse.model_validate_json(fast.content)  # the documented schema, exactly
    # A repeated q goes to the route (which takes the last one): the same answer.
    slow = client.get("/api/search", params=[("q", params["q"]), *params.items()])
    assert slow.status_code == 200 and len(route_calls) == 1
    assert without_id(fast.json()) == without_id(slow.json())
    assert fast.json()["results"], "the fixture content answers each of these"


# (query string, status, a word of the reason, whether the route's function runs: FastAPI
# refuses a malformed parameter before it; the knowledge base refuses a query inside it).
@pytest.mark.parametrize("query, status, reason, reached", [
    ("k=0&q=电费", 422, "k", False),
    ("k=51&q=电费", 422, "k", False),
    ("k=abc&q=电费", 422, "k", False),
    ("k=&q=电费", 422, "k", False),
    ("k=010&q=电费", 200, None, True),  # the route reads it as 10
    ("category=" + "类" * 51 + "&q=电费", 422, "category", False),
    ("k=5", 422, "q", False),
    ("q=", 422, "empty", True),
    ("q=%EF%BC%9F%EF%BC%81", 422, "empty", True),  # ？！ only
    ("q=" + "电" * 201, 422, "limit", True),
])
def test_anything_else_goes_to_the_route_and_keeps_its_answer(client, route_calls, query,
                                                               status, reason, reached):
    r = client.get("/api/search?" + query)
    assert r.status_code == status, r.text
    assert len(route_calls) == int(reached)
    if reason:
        assert reason in r.text


def test_the_fast_path_logs_the_agent_from_the_header_or_the_parameter(kb):
    with client_for(kb) as c:
        c.get("/api/search", params={"q": "电费怎么交"}, headers={"X-Agent-Id": "A2001"})
        c.get("/api/search", params={"q": "电价多少", "agent": "A2002"},
              headers={"X-Agent-Id": "A2003"})
        c.get("/api/search", params={"q": "停电报修"}, headers={"X-Agent-Id": "not an id!"})
        c.app.state.querylog.flush()
    rows = kb_log_rows(kb)
    assert rows["电费怎么交"] == "A2001"
    assert rows["电价多少"] == "A2002"  # the parameter first, as the route does
    assert rows["停电报修"] is None  # a malformed id is ignored, never refused


@pytest.mark.parametrize("agent", ["a" * 65, "A042\n", "x; drop"])
def test_a_malformed_agent_id_is_dropped_not_refused_on_either_path(client, route_calls, agent):
    """A page given a bad id in its address must still search; the id is just not logged."""
    fast = client.get("/api/search", params={"q": "电费怎么交", "agent": agent})
    slow = client.get("/api/search", params=[("q", "电费怎么交"), ("q", "电费怎么交"),
                                             ("agent", agent)])
    assert fast.status_code == slow.status_code == 200
    assert len(route_calls) == 1  # the repeated q: the route's answer, and its check, too
    client.app.state.querylog.flush()
    for r in (fast, slow):
        assert logged_agent(client.app.state.kb, r.json()["query_id"]) is None


def test_a_chinese_agent_id_is_logged(client):
    r = client.get("/api/search", params={"q": "电费怎么交", "agent": "张三"})
    assert r.status_code == 200
    client.app.state.querylog.flush()
    assert logged_agent(client.app.state.kb, r.json()["query_id"]) == "张三"


def logged_agent(kb, query_id: str):
    with sqlite3.connect(kb.data_dir / LOG_FILE) as db:
        return db.execute("SELECT agent FROM searches WHERE query_id = ?", (query_id,)).fetchone()[0]


def kb_log_rows(kb) -> dict:
    with sqlite3.connect(kb.data_dir / LOG_FILE) as db:
        return dict(db.execute("SELECT query, agent FROM searches"))


def test_with_agent_tokens_only_an_accepted_token_takes_the_fast_path(kb, route_calls):
    with client_for(kb, agent_tokens=AGENT) as c:
        for token in (AGENT, EDITOR):
            r = c.get("/api/search", params={"q": "停电"},
                      headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200
        assert route_calls == []
        assert c.get("/api/search", params={"q": "停电"}).status_code == 401
        wrong = c.get("/api/search", params={"q": "停电"},
                      headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 403 and "token" in wrong.json()["detail"]


def test_fast_answers_carry_the_cors_header(kb, route_calls):
    with client_for(kb, cors_origins=OPS) as c:
        r = c.get("/api/search", params={"q": "停电"}, headers={"Origin": OPS})
    assert r.status_code == 200 and route_calls == []
    assert r.headers["access-control-allow-origin"] == OPS


def test_other_methods_and_paths_are_left_alone(client, route_calls):
    assert client.post("/api/search", params={"q": "停电"}).status_code == 405
    assert client.get("/api/search/", params={"q": "停电"}).status_code in (200, 307, 404)
    assert client.get("/api/categories").status_code == 200


def test_without_an_index_the_route_says_what_to_run(content, tmp_path, e5, route_calls):
    with client_for(KnowledgeBase(content, tmp_path / "empty-data", e5)) as c:
        r = c.get("/api/search", params={"q": "停电"})
    assert r.status_code == 503 and "kb index" in r.json()["detail"]
    assert len(route_calls) == 1  # tried fast, then answered by the route
