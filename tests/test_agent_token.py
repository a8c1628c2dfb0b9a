"""The optional agents' token (KB_AGENT_TOKENS) on the real app, real files and the real e5
model: search and reading stay open by default; with tokens set they need one, and an editor's
token works too. Health checks and the pages' files stay open."""

import pytest
from fastapi.testclient import TestClient

from kb.config import Settings
from server.app import create_app

AGENT, OTHER_AGENT, EDITOR = "agent-token-1", "agent-token-2", "editor-token-1"
ARTICLE = "repair-home-outage"


@pytest.fixture(scope="module")
def kb(indexed_copy, e5):
    """One index for the module: these tests only read, or log."""
    return indexed_copy("agent-token", e5)


def client_for(kb, **settings) -> TestClient:
    return TestClient(create_app(
        Settings(content_dir=kb.content_dir, data_dir=kb.data_dir, editor_tokens=EDITOR,
                 **settings), kb))


@pytest.fixture(scope="module")
def open_client(kb):
    with client_for(kb) as c:
        yield c


@pytest.fixture(scope="module")
def guarded(kb):
    with client_for(kb, agent_tokens=f"{AGENT}, {OTHER_AGENT}") as c:
        yield c


def query_id(client, headers) -> str:
    r = client.get("/api/search", params={"q": "家里突然没电了"}, headers=headers)
    assert r.status_code == 200
    return r.json()["query_id"]


def calls(client, headers) -> dict:
    """Each guarded endpoint, called as an agent would; name -> response."""
    qid = query_id(client, {"Authorization": f"Bearer {AGENT}"})  # any token works when open
    return {
        "search": lambda: client.get("/api/search", params={"q": "停电"}, headers=headers),
        "article": lambda: client.get(f"/api/articles/{ARTICLE}", headers=headers),
        "list": lambda: client.get("/api/articles", headers=headers),
        "categories": lambda: client.get("/api/categories", headers=headers),
        "hittest": lambda: client.get("/api/hittest", params={"q": "停电"}, headers=headers),
        "feedback": lambda: client.post("/api/feedback", headers=headers, json={
            "query_id": qid, "article_id": ARTICLE, "useful": True}),
        "events": lambda: client.post("/api/events", headers=headers, json={
            "query_id": qid, "article_id": ARTICLE, "kind": "opened"}),
    }


ENDPOINTS = ["search", "article", "list", "categories", "hittest", "feedback", "events"]


@pytest.mark.parametrize("name", ENDPOINTS)
def test_without_agent_tokens_search_and_reading_are_open(open_client, name):
    r = calls(open_client, {})[name]()
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("name", ENDPOINTS)
def test_with_agent_tokens_a_call_without_a_token_is_401(guarded, name):
    r = calls(guarded, {})[name]()
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == "Bearer"
    assert "/?token=" in r.json()["detail"] and AGENT not in r.text


@pytest.mark.parametrize("name", ENDPOINTS)
@pytest.mark.parametrize("token", [f"{AGENT}x", AGENT[:-1], "agent-token-3", "", "wrong"])
def test_with_agent_tokens_a_wrong_token_is_refused(guarded, name, token):
    r = calls(guarded, {"Authorization": f"Bearer {token}"})[name]()
    assert r.status_code == (401 if not token else 403)
    assert AGENT not in r.text and OTHER_AGENT not in r.text


@pytest.mark.parametrize("name", ENDPOINTS)
@pytest.mark.parametrize("token", [AGENT, OTHER_AGENT, EDITOR])
def test_with_agent_tokens_an_agents_or_editors_token_is_accepted(guarded, name, token):
    r = calls(guarded, {"Authorization": f"Bearer {token}"})[name]()
    assert r.status_code == 200, r.text


def test_the_search_with_a_token_is_the_open_search(open_client, guarded):
    q = {"q": "家里突然没电了"}
    ids = [x["id"] for x in open_client.get("/api/search", params=q).json()["results"]]
    got = guarded.get("/api/search", params=q, headers={"Authorization": f"Bearer {AGENT}"})
    assert [x["id"] for x in got.json()["results"]] == ids and ids[0] == ARTICLE


def test_a_token_in_the_address_is_not_accepted_by_the_api(guarded):
    # Only the page reads ?token=, once; the API takes headers, so tokens stay out of access logs.
    r = guarded.get("/api/search", params={"q": "停电", "token": AGENT})
    assert r.status_code == 401


def test_another_scheme_is_401(guarded):
    r = guarded.get("/api/categories", headers={"Authorization": AGENT})
    assert r.status_code == 401


@pytest.mark.parametrize("url", ["/healthz", "/readyz", "/", "/editor", "/static/app.js",
                                 "/static/feedback.js", "/static/editor.js"])
def test_health_checks_and_the_pages_stay_open(guarded, url):
    assert guarded.get(url).status_code == 200


def test_an_agent_token_cannot_edit(guarded):
    r = guarded.post("/api/render", json={"markdown": "x"},
                     headers={"Authorization": f"Bearer {AGENT}"})
    assert r.status_code == 403
    r = guarded.post("/api/render", json={"markdown": "x"},
                     headers={"Authorization": f"Bearer {EDITOR}"})
    assert r.status_code == 200


def test_agent_tokens_come_from_the_environment_and_never_show(monkeypatch):
    monkeypatch.setenv("KB_AGENT_TOKENS", " alpha-agent ,beta-agent,, ")
    settings = Settings()
    assert settings.agent_token_list() == ["alpha-agent", "beta-agent"]
    assert "alpha-agent" not in repr(settings) and "alpha-agent" not in str(settings.model_dump())


def test_no_agent_tokens_by_default(monkeypatch):
    monkeypatch.delenv("KB_AGENT_TOKENS", raising=False)
    assert Settings().agent_token_list() == []


# The /reports pages open from an address, so they take the token as a header or a cookie that
# a first visit with ?token= sets (and then drops from the address).

@pytest.mark.parametrize("url", ["/reports", "/reports/2026-11"])
def test_without_agent_tokens_the_reports_are_open(open_client, url):
    assert open_client.get(url).status_code in (200, 404)  # 404: a month with no searches


@pytest.mark.parametrize("url", ["/reports", "/reports/2026-11"])
def test_with_agent_tokens_the_reports_need_a_token(kb, url):
    with client_for(kb, agent_tokens=AGENT) as c:
        r = c.get(url)
        assert r.status_code == 401 and "/reports?token=" in r.text and AGENT not in r.text
        assert "text/html" in r.headers["content-type"]
        assert c.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 403
        c.cookies.set("kb_token", "wrong")
        assert c.get(url).status_code == 403
        assert c.get(url, headers={"Authorization": f"Bearer {EDITOR}"}).status_code in (200, 404)


def test_a_wrong_token_in_the_reports_address_sets_nothing(kb):
    with client_for(kb, agent_tokens=AGENT) as c:
        r = c.get("/reports", params={"token": AGENT + "x"}, follow_redirects=False)
        assert r.status_code == 403 and "set-cookie" not in r.headers
        assert c.get("/reports").status_code == 401


@pytest.mark.parametrize("token", [AGENT, EDITOR])
def test_a_token_in_the_reports_address_becomes_a_cookie(kb, token):
    with client_for(kb, agent_tokens=AGENT) as c:
        r = c.get("/reports", params={"token": token}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/reports"
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "Path=/reports" in cookie and "samesite=lax" in cookie.lower()
        assert "secure" not in cookie.lower()  # plain http here; set when served over https
        page = c.get("/reports")  # the client sends the cookie back, as a browser would
        assert page.status_code == 200 and "月报" in page.text
        assert c.get("/reports/2026-11").status_code in (200, 404)
        assert c.get("/api/categories").status_code == 401  # the API still wants the header
