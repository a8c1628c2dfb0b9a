"""The real app under TestClient, over a tmp copy of the small real content folder and real e5."""

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kb.config import Settings
from kb.knowledge_base import KnowledgeBase
from server.app import STATIC, create_app

HOSTILE = """---
id: hostile-markup
title: 含有脚本的测试文章
category: 测试
similar:
  - 脚本测试问法
---
您好，这是安全测试。<script>alert('x')</script>

<img src="x.png" onerror="alert('y')">

[点这里](javascript:alert('z')) 和 <a href="javascript:alert('w')" onclick="alert('v')">这里</a>

[正常链接](https://www.95598.cn/)

## 依据
<script>document.cookie</script>测试依据。
"""


def make_client(kb: KnowledgeBase) -> TestClient:
    return TestClient(create_app(Settings(content_dir=kb.content_dir, data_dir=kb.data_dir), kb))


@pytest.fixture(scope="module")
def client(indexed_copy, e5):
    """For tests that only read: one index for the whole module (indexing takes seconds)."""
    with make_client(indexed_copy("api", e5)) as c:
        yield c


@pytest.fixture
def own_client(kb):
    """For tests that edit content and reindex: the per-test `kb` on its own tmp copy."""
    with make_client(kb) as c:
        yield c


def search(client, q, **params):
    return client.get("/api/search", params={"q": q, **params})


# Health and readiness.


def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_readyz_names_the_live_snapshot(client):
    r = client.get("/readyz")
    assert r.status_code == 200
    body = r.json()
    assert body["ready"] is True and body["articles"] == 6
    assert body["snapshot"].startswith("snap-") and "e5" in body["embedder"]


def test_readyz_without_an_index_says_how_to_fix(content, tmp_path, e5):
    with make_client(KnowledgeBase(content, tmp_path / "empty-data", e5)) as c:
        r = c.get("/readyz")
        assert r.status_code == 503
        assert r.json()["ready"] is False and "kb index" in r.json()["detail"]
        s = search(c, "停电")
        assert s.status_code == 503 and "kb index" in s.json()["detail"]
        assert c.get("/healthz").status_code == 200


# Searching.


def test_search_returns_the_right_first_result_and_terms(client):
    r = search(client, "家里突然没电了")
    assert r.status_code == 200
    body = r.json()
    assert body["query"] == "家里突然没电了"
    top = body["results"][0]
    assert top["id"] == "repair-home-outage" and top["confident"] and body["confident"]
    assert top["matched"] == {"kind": "similar", "text": "家里没电了怎么办"}
    assert "总开关" in top["answer"] and top["answer_html"].startswith("<p>")
    assert "没电" in body["terms"] and "停电" in body["terms"]  # a word and its synonym
    lengths = [len(t) for t in body["terms"]]
    assert lengths == sorted(lengths, reverse=True)  # longest first, for highlighting


def test_search_results_carry_related_articles(client):
    top = search(client, "家里突然没电了").json()["results"][0]
    assert {"id": "repair-arrival-time", "title": "报修后抢修人员多久能到"} in top["related"]


def test_unrelated_query_is_not_confident(client):
    body = search(client, "明天天气怎么样").json()
    assert body["confident"] is False and body["results"]
    assert not any(r["confident"] for r in body["results"])


def test_k_limits_results(client):
    assert len(search(client, "电费", k=2).json()["results"]) == 2


@pytest.mark.parametrize("k", [0, -1, 51, "many"])
def test_k_out_of_range_is_refused(client, k):
    r = search(client, "停电", k=k)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["query", "k"]


def test_missing_query_is_refused(client):
    r = client.get("/api/search")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "q"]


@pytest.mark.parametrize("q", ["", "   ", "？？！。", "...!!!"])
def test_empty_or_punctuation_query_is_refused_with_a_reason(client, q):
    r = search(client, q)
    assert r.status_code == 422
    assert "empty" in r.json()["detail"]


def test_over_long_query_is_refused_with_a_reason(client):
    r = search(client, "停" * 201)
    assert r.status_code == 422
    assert r.json()["detail"] == "the query is 201 characters; the limit is 200"


def test_query_at_the_limit_is_accepted(client):
    assert search(client, "停" * 200).status_code == 200


def test_category_filter(client):
    body = search(client, "停电", category="缴费渠道").json()
    assert [r["id"] for r in body["results"]] == ["pay-channels"]
    ids = {r["id"] for r in search(client, "停电", category="故障报修").json()["results"]}
    assert ids == {"repair-home-outage", "repair-arrival-time"}


def test_unknown_category_gives_no_results(client):
    body = search(client, "停电", category="没有这个分类").json()
    assert body["results"] == [] and body["confident"] is False


def test_empty_category_means_all(client):
    assert len(search(client, "停电", category="").json()["results"]) == 6


def test_over_long_category_is_refused(client):
    assert search(client, "停电", category="分" * 51).status_code == 422


# Articles.


def test_article_by_id(client):
    r = client.get("/api/articles/repair-arrival-time")
    assert r.status_code == 200
    a = r.json()
    assert a["title"] == "报修后抢修人员多久能到" and a["category"] == "故障报修"
    assert "修电的啥时候到" in a["similar"] and a["tags"] == ["报修", "到达时间"]
    assert "45分钟" in a["answer"] and "十项承诺" in a["basis_html"]
    assert a["effective"] == "2025-01-01"


def test_unknown_article_is_404(client):
    r = client.get("/api/articles/no-such-article")
    assert r.status_code == 404 and "no-such-article" in r.json()["detail"]


@pytest.mark.parametrize(
    "raw_path",
    ["../x", "..%2fx", "%2e%2e%2f", "%2e%2e%2fcontent", "A%20B", "A B", "UPPER", "a--b",
     "-a", "x" * 81, "%00", "repair-home-outage%2f..", "..%2f..%2fpyproject.toml"],
)
def test_bad_article_ids_are_refused(client, raw_path):
    r = client.get(f"/api/articles/{raw_path}")
    assert r.status_code in (404, 422)
    assert "您好" not in r.text and "[project]" not in r.text


def test_categories_with_counts(client):
    r = client.get("/api/categories")
    assert r.status_code == 200
    assert r.json() == [
        {"name": "停电信息", "articles": 1},
        {"name": "催费与欠费停复电", "articles": 1},
        {"name": "故障报修", "articles": 2},
        {"name": "电费账单", "articles": 1},
        {"name": "缴费渠道", "articles": 1},
    ]


# Documentation and the page.


def test_openapi_docs_are_served(client):
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/api/search", "/api/articles/{article_id}", "/api/categories"} <= set(spec["paths"])


def test_page_and_its_assets_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="q"' in page.text and "/static/app.js" in page.text
    for asset, kind in [("app.js", "javascript"), ("style.css", "text/css")]:
        r = client.get(f"/static/{asset}")
        assert r.status_code == 200 and kind in r.headers["content-type"]


def test_page_loads_nothing_from_outside():
    for path in Path(STATIC).iterdir():
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", text), path
        assert "@import" not in text and "url(http" not in text, path


# Content safety and live reindexing.


def test_hostile_markup_comes_back_sanitised(own_client, kb, content):
    (content / "repair" / "hostile-markup.md").write_text(HOSTILE, encoding="utf-8")
    kb.reindex()
    a = own_client.get("/api/articles/hostile-markup").json()
    hit = next(r for r in search(own_client, "脚本测试问法").json()["results"]
               if r["id"] == "hostile-markup")
    for html in (a["answer_html"], a["basis_html"], hit["answer_html"], hit["basis_html"]):
        lowered = html.lower()
        assert "<script" not in lowered and "onerror" not in lowered
        assert "onclick" not in lowered and "javascript:" not in lowered
    assert "这是安全测试" in a["answer_html"] and "测试依据" in a["basis_html"]
    assert 'href="https://www.95598.cn/"' in a["answer_html"]
    assert 'rel="noopener noreferrer"' in a["answer_html"]


def test_new_snapshot_is_picked_up_without_restart(own_client, kb, content):
    before = own_client.get("/readyz").json()["snapshot"]
    path = content / "repair" / "repair-arrival-time.md"
    path.write_text(path.read_text(encoding="utf-8").replace("45分钟", "30分钟"),
                    encoding="utf-8")
    (content / "billing" / "meter-check.md").write_text(
        "---\nid: meter-check\ntitle: 怀疑电表走得快怎么办\ncategory: 电能表\n"
        "similar:\n  - 电表是不是坏了\n---\n您好，您可以申请电能表校验。\n",
        encoding="utf-8",
    )
    kb.reindex()
    ready = own_client.get("/readyz").json()
    assert ready["snapshot"] != before and ready["articles"] == 7
    assert "30分钟" in own_client.get("/api/articles/repair-arrival-time").json()["answer"]
    assert search(own_client, "电表是不是坏了").json()["results"][0]["id"] == "meter-check"
    assert {"name": "电能表", "articles": 1} in own_client.get("/api/categories").json()


def test_removed_article_is_gone_after_reindex(own_client, kb, content):
    (content / "billing" / "pay-channels.md").unlink()
    kb.reindex()
    assert own_client.get("/api/articles/pay-channels").status_code == 404
    ids = {r["id"] for r in search(own_client, "在哪交电费").json()["results"]}
    assert "pay-channels" not in ids
