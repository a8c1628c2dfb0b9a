"""Incremental indexing: unchanged files are not read again, and on a large index a change goes
into an update segment that searches like a full build. The fixture KB is small, so these tests
lower the size above which updates are used. A counting stand-in embedder (HashEmbedder) is
enough: the tests are about what is stored and found, not about the model."""

import dataclasses
import gc
import json
import os
import weakref

import numpy as np
import pytest

from indexer import build, ranker, segments
from indexer.embedders import HashEmbedder
from indexer.lexical import BM25, SegmentedBM25
from indexer.vector import SegmentedVectors, VectorIndex
from kb import allocator, scan
from kb.article import article_stats, dump_article, parse_article
from kb.errors import NotFound
from kb.knowledge_base import KnowledgeBase

QUERIES = ["家里突然没电了", "交了钱怎么还不来电", "电费咋那么高", "抢修的人多久到",
           "停电前会不会提前告诉我", "能用支付宝交电费吗"]


@pytest.fixture
def updating(monkeypatch):
    """Updates on the six-article fixture: no size floor, and no learned ranker (it is trained
    on every article, so an index that has one is always rebuilt), and updates may hold any
    share of the articles."""
    monkeypatch.setattr(build, "UPDATES_FROM", 0)
    monkeypatch.setattr(build, "MERGE_AT", 1.0)
    monkeypatch.setattr(ranker, "MAX_WORK", 0)


def add_similar(path, question):
    article = parse_article(path.read_text(encoding="utf-8"), path)
    edited = dataclasses.replace(article, similar=(*article.similar, question))
    path.write_text(dump_article(edited), encoding="utf-8")


def ranking(kb, queries=QUERIES):
    return {q: [h.id for h in kb.search(q, 6)] for q in queries}


def test_an_edit_goes_into_an_update_segment(hash_kb, content, updating):
    hash_kb.reindex()
    add_similar(content / "billing" / "pay-channels.md", "电费能在银行柜台交吗")
    report = hash_kb.reindex()
    assert report.build == "update" and report.changed == ["pay-channels"]
    assert report.embedded == 1
    stats = hash_kb.stats()
    assert stats["articles"] == 6 and len(stats["segments"]) == 2
    hit = hash_kb.search("电费能在银行柜台交吗", 1)[0]
    assert hit.id == "pay-channels" and hit.matched_text == "电费能在银行柜台交吗"


def test_updated_index_ranks_as_a_full_build(hash_kb, content, tmp_path, updating):
    hash_kb.reindex()
    add_similar(content / "billing" / "pay-channels.md", "电费能在银行柜台交吗")
    (content / "repair" / "repair-arrival-time.md").unlink()
    (content / "billing" / "bill-reissue.md").write_text(
        "---\nid: bill-reissue\ntitle: 电费发票丢了怎么补开\ncategory: 电费账单\n"
        "similar: [发票找不到了, 能重新开电费发票吗]\n---\n您好，可以在网上国网补开电子发票。\n",
        encoding="utf-8")
    assert hash_kb.reindex().build == "update"
    fresh = KnowledgeBase(content, tmp_path / "fresh", HashEmbedder())
    assert fresh.reindex().build.startswith("full")
    for query in QUERIES:
        updated = {h.id: h for h in hash_kb.search(query, 10)}
        rebuilt = {h.id: h for h in fresh.search(query, 10)}
        assert set(updated) == set(rebuilt)
        assert max(updated, key=lambda i: updated[i].score) == \
            max(rebuilt, key=lambda i: rebuilt[i].score)
        for i, hit in updated.items():
            assert hit.dense == pytest.approx(rebuilt[i].dense, abs=1e-6)
            # Lexical scores differ a little: deleted passages count in idf until a merge,
            # which on six articles is a large share.
            assert hit.score == pytest.approx(rebuilt[i].score, abs=0.02)
    assert hash_kb.stats()["passages"] == fresh.stats()["passages"]
    assert hash_kb.stats()["content_hash"] == fresh.stats()["content_hash"]


def test_removed_article_is_gone_after_an_update(hash_kb, content, updating):
    hash_kb.reindex()
    (content / "billing" / "pay-channels.md").unlink()
    report = hash_kb.reindex()
    assert report.build == "update" and report.removed == ["pay-channels"]
    assert "pay-channels" not in {a["id"] for a in hash_kb.articles()}
    assert all(h.id != "pay-channels" for q in QUERIES for h in hash_kb.search(q, 10))
    with pytest.raises(NotFound):
        hash_kb.get("pay-channels")


def test_many_updates_fold_into_one_segment(hash_kb, content, updating):
    hash_kb.reindex()
    path = content / "billing" / "pay-channels.md"
    for n in range(build.MAX_UPDATES + 2):
        add_similar(path, f"第{n}种交电费的新说法")
        assert hash_kb.reindex().build == "update"
        assert len(hash_kb.stats()["segments"]) <= build.MAX_UPDATES + 1
    assert hash_kb.search("第7种交电费的新说法", 1)[0].id == "pay-channels"
    assert hash_kb.stats()["articles"] == 6


def test_updates_past_the_share_make_a_new_base(hash_kb, content, updating, monkeypatch):
    monkeypatch.setattr(build, "MERGE_AT", 0.3)
    hash_kb.reindex()
    add_similar(content / "billing" / "pay-channels.md", "电费能在银行柜台交吗")
    assert hash_kb.reindex().build == "update"
    add_similar(content / "billing" / "bill-why-high.md", "这个月电费怎么翻倍了")
    assert hash_kb.reindex().build.startswith("full: updates hold")
    assert len(hash_kb.stats()["segments"]) == 1


def test_a_new_dictionary_word_recuts_only_the_articles_that_hold_it(hash_kb, content,
                                                                      updating):
    hash_kb.reindex()
    assert "网上国网" in hash_kb.searcher().segmenter.words("用网上国网交费")
    with open(content / "_dict" / "userdict.txt", "a", encoding="utf-8") as fh:
        fh.write("\n支付宝\n")
    report = hash_kb.reindex()
    assert report.build == "update" and report.resegmented == ["pay-channels"]
    assert not report.changed and report.embedded == 0
    assert "支付宝" in hash_kb.searcher().segmenter.words("用支付宝交费")
    words = hash_kb.searcher().words
    assert words.segments[-1].vocab.get("支付宝") is not None


def test_new_synonym_groups_are_published_without_recutting(hash_kb, content, updating):
    hash_kb.reindex()
    path = content / "_dict" / "synonyms.txt"
    groups = path.read_text(encoding="utf-8").strip().splitlines()
    path.write_text("\n".join(reversed(groups)) + "\n", encoding="utf-8")
    report = hash_kb.reindex()
    assert report.build == "update" and not report.resegmented
    assert len(hash_kb.stats()["segments"]) == 1  # nothing to cut: no update segment


def test_reindex_without_changes_publishes_nothing(hash_kb):
    first = hash_kb.reindex().snapshot
    report = hash_kb.reindex()
    assert report.build.startswith("none") and report.snapshot == first


def test_unchanged_files_are_not_read_again(hash_kb, content, monkeypatch):
    monkeypatch.setattr(scan, "RACY_NS", -1)  # trust size and time even for fresh files
    hash_kb.reindex()
    read = []
    real = scan.load_file
    monkeypatch.setattr(scan, "load_file", lambda path: read.append(path.name) or real(path))
    add_similar(content / "billing" / "pay-channels.md", "电费能在银行柜台交吗")
    assert hash_kb.reindex().changed == ["pay-channels"]
    assert read == ["pay-channels.md"]


def test_an_edit_that_keeps_size_and_time_is_still_seen(hash_kb, content):
    """Racily clean: the file was read moments after it was written, so its record is not
    trusted until the clock has moved on."""
    hash_kb.reindex()
    path = content / "billing" / "pay-channels.md"
    before = os.stat(path)
    path.write_text(path.read_text(encoding="utf-8").replace("在哪交电费", "在哪缴电费"),
                    encoding="utf-8")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(path).st_size == before.st_size
    assert hash_kb.reindex().changed == ["pay-channels"]


def test_reloading_after_an_update_reuses_the_loaded_base(hash_kb, content, updating):
    hash_kb.reindex()
    base = hash_kb.searcher().words.segments[0]
    add_similar(content / "billing" / "pay-channels.md", "电费能在银行柜台交吗")
    hash_kb.reindex()
    assert hash_kb.searcher().words.segments[0] is base



def test_loaded_articles_share_their_questions_with_the_passages(hash_kb, content, updating):
    hash_kb.reindex()
    add_similar(content / "billing" / "pay-channels.md", "电费能在银行柜台交吗")
    hash_kb.reindex()
    s = hash_kb.searcher()
    folder = s.folder
    on_disk = [r for e in segments.entries(s.manifest, folder)
               for r in segments.read_json(folder / f"{e['prefix']}articles.json")]
    live = {a["id"]: a for a in s.articles}
    current = [r for r in on_disk if live[r["id"]]["content_hash"] == r["content_hash"]]
    assert len(current) == len(live) and all(r == live[r["id"]] for r in current)
    for i, a in enumerate(s.articles):
        questions = [t for t, o, k in zip(s.texts, s.owner, s.kinds)
                     if o == i and k in ("title", "similar")]
        assert questions == [a["title"], *a["similar"]]
        assert all(x is y for x, y in zip(questions, [a["title"], *a["similar"]]))


def test_a_replaced_searcher_is_freed_at_once(hash_kb, content, updating):
    # With the cyclic collector off, only reference counting frees: a reference cycle through
    # a searcher would keep every replaced snapshot in memory until a full collection, and a
    # server saving articles all day grew by 20 MB a save at 50,000 articles.
    hash_kb.reindex()
    hash_kb.search("家里突然没电了")  # fills the query cache too
    old = weakref.ref(hash_kb.searcher())
    gc.disable()
    try:
        add_similar(content / "billing" / "pay-channels.md", "电费能在银行柜台交吗")
        hash_kb.reindex()
        hash_kb.search("家里突然没电了")
        assert old() is None
    finally:
        gc.enable()


def test_memory_goes_back_when_a_replaced_searcher_is_freed(hash_kb, content, updating,
                                                             monkeypatch):
    """Not when the new snapshot loads: a request may still be searching the old one."""
    assert allocator.give_back_freed()  # glibc's malloc_trim, on this machine
    released = []
    monkeypatch.setattr(allocator, "give_back_freed", lambda: released.append(1) or True)
    hash_kb.reindex()
    held = hash_kb.searcher()
    add_similar(content / "billing" / "pay-channels.md", "电费能在银行柜台交吗")
    hash_kb.reindex()
    assert hash_kb.search("电费能在银行柜台交吗")[0].id == "pay-channels"
    assert hash_kb.searcher() is not held and released == []
    del held
    assert released == [1]


def remove_similar(path, question):
    article = parse_article(path.read_text(encoding="utf-8"), path)
    edited = dataclasses.replace(article, similar=tuple(q for q in article.similar
                                                        if q != question))
    path.write_text(dump_article(edited), encoding="utf-8")


@pytest.mark.parametrize("hashes_on_disk", [True, False])  # False: a segment from before them
def test_who_asks_a_question_follows_updates(hash_kb, content, updating, hashes_on_disk):
    hash_kb.reindex()
    base = hash_kb.index_dir / hash_kb.stats()["snapshot"] / "questions.npy"
    assert base.exists()
    if not hashes_on_disk:
        base.unlink()
        segments._loaded.clear()
    s = hash_kb.searcher()
    owner, kind = s.question_owner("  交电费有啥办法？")  # the same question, as lint compares
    assert (owner["id"], kind) == ("pay-channels", "similar")
    assert s.question_owner("电费可以通过哪些方式缴纳")[1] == "title"
    assert s.question_owner("交电费有啥办法", other_than="pay-channels") is None
    assert s.question_owner("一个没有文章问过的问题") is None
    remove_similar(content / "billing" / "pay-channels.md", "交电费有啥办法")
    add_similar(content / "billing" / "pay-channels.md", "电费能在银行柜台交吗")
    assert hash_kb.reindex().build == "update"
    s = hash_kb.searcher()
    assert s.question_owner("交电费有啥办法") is None  # its old version is deleted
    assert s.question_owner("电费能在银行柜台交吗")[0]["id"] == "pay-channels"
    assert s.question_owner("电费可以通过哪些方式缴纳")[1] == "title"

def test_format_1_index_is_read_and_replaced_by_a_full_build(hash_kb, updating):
    hash_kb.reindex()
    before = ranking(hash_kb)
    folder = hash_kb.index_dir / hash_kb.stats()["snapshot"]
    manifest = segments.read_json(folder / "manifest.json")
    del manifest["segments"]
    manifest["version"] = 1
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    (folder / "catalog.json").unlink()
    put_columns_in_passage_order(folder)
    old = KnowledgeBase(hash_kb.content_dir, hash_kb.data_dir, HashEmbedder())
    assert ranking(old) == before
    assert old.reindex().build == "full: the live index has an older format"


def put_columns_in_passage_order(folder, prefix=""):
    """Rewrite a segment's lexical files as they were before their columns were stored in
    the search's layout (passage order); the loader must put them back in it."""
    passages = segments.read_json(folder / f"{prefix}passages.json")
    layout = segments.passage_layout(np.asarray(passages["owner"]), passages["kind"],
                                     max(passages["owner"]) + 1)
    for field in ("words", "chars"):
        index = BM25.load(folder / f"{prefix}{field}")
        old = index.with_columns(layout.position)  # column p: what column position[p] held
        assert not np.array_equal(old.weights.indices, index.weights.indices)
        old.save(folder / f"{prefix}{field}")


def test_segments_written_in_passage_order_are_read_in_layout_order(hash_kb, content, updating):
    """Indexes written before 2026-12-03 hold their lexical columns in passage order: a base
    in that order beside an update segment in the new one ranks as a fresh index does."""
    hash_kb.reindex()
    add_similar(content / "billing" / "pay-channels.md", "电费能在银行柜台交吗")
    assert hash_kb.reindex().build == "update"
    before = ranking(hash_kb, [*QUERIES, "电费能在银行柜台交吗"])
    folder = hash_kb.index_dir / hash_kb.stats()["snapshot"]
    manifest = segments.read_json(folder / "manifest.json")
    base = manifest["segments"][0]
    del base["columns"]
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    put_columns_in_passage_order(folder, base["prefix"])
    segments._loaded.clear()
    old = KnowledgeBase(hash_kb.content_dir, hash_kb.data_dir, HashEmbedder())
    assert ranking(old, [*QUERIES, "电费能在银行柜台交吗"]) == before


def test_segmented_bm25_scores_as_one_index():
    docs = [["停电", "报修"], ["电费", "缴纳", "电费"], ["停电", "通知"], ["电表", "校验"],
            ["电费", "高"], ["报修", "进度", "停电"]]
    whole = BM25.build(docs)
    parts = [BM25.build(docs[:4], whole.avgdl), BM25.build(docs[4:], whole.avgdl)]
    joined = SegmentedBM25(parts, [None, None])
    query = {"停电": 1.0, "电费": 1.0, "进度": 0.5}
    assert np.allclose(joined.score(query), whole.score(query), atol=1e-6)
    # Deleted passages drop out of the scores; they still count for idf until a merge.
    without = SegmentedBM25(parts, [np.array([0, 2, 3]), None])
    assert np.allclose(without.score(query), whole.score(query)[[0, 2, 3, 4, 5]], atol=1e-6)


@pytest.mark.parametrize("live", [[None], [None, None], [np.array([0, 2, 3]), np.array([1])]])
def test_columns_in_another_order_give_the_same_scores(live):
    """Segments store their columns in the search's layout (indexer/groups.py): the same
    documents built in another column order score the same, passage by passage, and
    add_scores puts each live passage's score at its column."""
    docs = [["停电", "报修"], ["电费", "缴纳", "电费"], ["停电", "通知"], ["电表", "校验"],
            ["电费", "高"], ["报修", "进度", "停电"]]
    whole = BM25.build(docs)
    cuts = [(0, 6)] if len(live) == 1 else [(0, 4), (4, 6)]
    plain = SegmentedBM25([BM25.build(docs[a:b], whole.avgdl) for a, b in cuts], live)
    rng = np.random.default_rng(len(live))
    positions = [rng.permutation(b - a) for a, b in cuts]
    shuffled = []
    for (a, _), position in zip(cuts, positions):
        order = np.argsort(position)  # the passage in each column
        shuffled.append(BM25.build([docs[a + i] for i in order], whole.avgdl))
    laid = SegmentedBM25(shuffled, live, positions)
    query = {"停电": 1.0, "电费": 1.0, "进度": 0.5}
    terms = plain.terms(query)
    ceiling = plain.ceiling(terms)
    expected = plain.scores(terms, ceiling)
    assert expected.max() > 0 and len(expected) == plain.n_docs
    terms = laid.terms(query)  # term ids are the order a segment first saw its terms in
    assert laid.ceiling(terms) == ceiling
    assert np.allclose(laid.scores(terms, ceiling), expected, atol=1e-7)
    by_column = laid.add_scores(terms, ceiling, np.zeros(laid.total_docs, np.float32))
    assert np.allclose(by_column[laid.column], expected, atol=1e-7)
    some = np.arange(plain.n_docs)[::2]
    assert np.allclose(laid.scores_at(terms, some, ceiling), expected[some], atol=1e-7)


def test_a_few_passages_score_as_in_the_full_pass():
    """scores_at (binary search in each term's row) against scores (the pass over every
    passage), across segments and with deleted passages."""
    rng = np.random.default_rng(3)
    vocab = ["停电", "报修", "电费", "缴纳", "电表", "校验", "通知", "进度", "高", "的"]
    docs = [list(rng.choice(vocab, size=rng.integers(1, 7))) for _ in range(60)]
    whole = BM25.build(docs)
    parts = [BM25.build(docs[:25], whole.avgdl), BM25.build(docs[25:40], whole.avgdl),
             BM25.build(docs[40:], whole.avgdl)]
    index = SegmentedBM25(parts, [np.array([i for i in range(25) if i % 4]), None,
                                  np.array([0, 3, 5, 19])])
    terms = index.terms({"停电": 1.0, "电费": 1.0, "进度": 0.5, "的": 1.0, "缺": 1.0})
    ceiling = index.ceiling(terms)
    full = index.scores(terms, ceiling)
    some = np.array([0, 1, 5, 17, 18, 19, 20, 33, index.n_docs - 1])
    assert np.allclose(index.scores_at(terms, some, ceiling), full[some], atol=1e-6)
    assert full.max() > 0
    assert len(index.scores_at(terms, np.zeros(0, np.int64), ceiling)) == 0


def test_a_row_is_found_the_same_by_bitmap_and_by_binary_search(monkeypatch):
    """BM25.find looks a common term's passages up in a bitmap and a rare one's by binary
    search; both must give each passage's own weight, at word edges too (63, 64, the last)."""
    rng = np.random.default_rng(5)
    n = 1000
    docs = [["常"] * int(rng.integers(1, 3)) + (["稀"] if i % 97 == 0 else []) +
            (["半"] if rng.random() < 0.5 else []) for i in range(n)]
    index = BM25.build(docs)
    passages = np.unique(np.concatenate([rng.integers(0, n, 300), [0, 63, 64, 127, 128, n - 1]]))
    dense = index.weights.toarray()
    for term in ("常", "稀", "半"):
        row = index.vocab[term]
        results = []
        for share in (0, 10**9):  # every row by binary search, then every row by bitmap
            monkeypatch.setattr("indexer.lexical.BITMAP_SHARE", share)
            held, where = index.find(row, passages)
            assert np.array_equal(held, dense[row, passages] > 0)
            assert np.array_equal(index.weights.data[where], dense[row, passages[held]])
            results.append((held, where))
        assert all(np.array_equal(a, b) for a, b in zip(*results))
    assert index._bitmaps  # the second pass did go through the bitmaps

@pytest.mark.parametrize("hnsw_from", [10**9, 0])  # flat, or HNSW with 8-bit codes
def test_segmented_vectors_search_live_passages_only(hnsw_from):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(300, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    parts = [VectorIndex.build(vectors[:200], 8, hnsw_from=hnsw_from),
             VectorIndex.build(vectors[200:], 8)]
    deleted = set(np.argsort(-(vectors[:200] @ vectors[7]))[:40].tolist())  # 7's nearest
    live = np.array([i for i in range(200) if i not in deleted])
    joined = SegmentedVectors(parts, [live, None])
    kept = np.concatenate([vectors[live], vectors[200:]])
    asked = []
    search = parts[0].search
    parts[0].search = lambda q, k, skip=None: asked.append(k) or search(q, k, skip)
    ids, scores = joined.search(vectors[7], 5)
    assert asked == [5]  # not 5 + 40: deleted passages are skipped, not over-fetched
    # Exactly 5 live answers, though the 40 nearest of the big segment are deleted.
    assert list(ids) == list(np.argsort(-(kept @ vectors[7]))[:5])
    assert np.allclose(joined.vectors(ids) @ vectors[7], scores, atol=0.02)
    some = np.array([0, 3, 18, 19, 25, 7])
    dots = joined.dots(some, vectors[7])
    assert np.allclose(dots, joined.vectors(some) @ vectors[7], atol=1e-5)
    assert np.allclose(dots, kept[some] @ vectors[7], atol=0.02)  # 8-bit codes in HNSW


@pytest.mark.parametrize("hnsw_from", [10**9, 0])  # flat float32 rows, or HNSW's 8-bit codes
def test_dots_read_from_the_codes_match_the_reconstructed_vectors(hnsw_from, tmp_path):
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(500, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    VectorIndex.build(vectors, 32, hnsw_from=hnsw_from).save(tmp_path / "v.faiss")
    index = VectorIndex.load(tmp_path / "v.faiss")
    assert index.kind == ("hnsw" if hnsw_from == 0 else "flat")
    ids = rng.choice(500, 60, replace=False)
    for q in vectors[:5]:
        exact = index.vectors(ids) @ q
        assert np.allclose(index.dots(ids, q), exact, atol=1e-5)
        assert np.abs(exact - vectors[ids] @ q).max() < (0.02 if hnsw_from == 0 else 1e-6)


def test_article_files_come_in_path_order(tmp_path):
    names = ["b.md", "a-b.md", "a/z.md", "a/sub/x.md", "a/sub-2/y.md", "_draft/q.md",
             "a/.hidden.md", "README.md", "a/notes.txt", "c/_skip.md"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x", encoding="utf-8")
    expected = [str(p) for p in sorted(tmp_path.rglob("*.md"))
                if not any(part.startswith(("_", ".")) for part in p.relative_to(tmp_path).parts)
                and p.name != "README.md"]
    assert [p for p, _ in article_stats(tmp_path)] == expected
    assert [p.rsplit("/", 1)[1] for p in expected] == ["x.md", "y.md", "z.md", "a-b.md", "b.md"]


def test_a_rebuild_after_an_edit_starts_from_the_live_ranker(kb, content, monkeypatch):
    """The real model: an edit retrains the ranker from the live one in WARM_EPOCHS and ranks
    every query as a cold build of the same files does. The edited article's column is not
    carried over: it was learned from what the article used to say."""
    epochs = []
    train = ranker.train
    monkeypatch.setattr(ranker, "train", lambda *a, **kw: epochs.append(kw.get("start"))
                        or train(*a, **kw))
    add_similar(content / "billing" / "pay-channels.md", "电费能在银行柜台交吗")
    report = kb.reindex()
    assert report.build.startswith("full") and kb.stats()["ranker"]
    start = epochs[-1]
    # Every column carried over but the edited article's, which starts cold from its questions.
    ids = [a["id"] for a in kb.searcher().articles]
    assert start is not None and len(ids) == start.shape[1]
    assert [i for i, norm in zip(ids, np.linalg.norm(start, axis=0)) if norm == 0] == \
        ["pay-channels"]
    warm = ranking(kb, [*QUERIES, "电费能在银行柜台交吗"])
    cold = KnowledgeBase(content, content.parent / "cold", kb.embedder)
    cold.reindex()
    assert epochs[-1] is None
    assert ranking(cold, [*QUERIES, "电费能在银行柜台交吗"]) == warm


def test_a_new_article_gets_a_cold_column_in_a_warm_start(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    owner = np.repeat(np.arange(3), 4)
    weights, _, _ = ranker.train(x, owner, 3)
    start = weights.copy()
    start[:, 2] = 0  # article 2 is new to the live ranker
    warm, _, _ = ranker.train(x, owner, 3, start=start)
    assert np.allclose(np.linalg.norm(warm, axis=0), 1.0, atol=1e-5)
    assert (np.argmax(x @ warm, axis=1) == owner).mean() >= (np.argmax(x @ weights, axis=1)
                                                             == owner).mean() - 1e-9


def test_a_damaged_catalog_only_costs_the_warm_start(hash_kb, content):
    hash_kb.reindex()
    folder = hash_kb.index_dir / hash_kb.stats()["snapshot"]
    articles = [build.article_from_record(r) for r in hash_kb.searcher().articles]
    dim = hash_kb.embedder.dim
    assert (np.linalg.norm(build.warm_start(folder, articles, dim), axis=0) > 0).all()
    catalog = segments.read_json(folder / "catalog.json")
    for damaged in ({**catalog, "hashes": catalog["hashes"][:-1]}, {**catalog, "hashes": None},
                    [catalog["ids"]]):
        (folder / "catalog.json").write_text(json.dumps(damaged), encoding="utf-8")
        assert build.warm_start(folder, articles, dim) is None
    add_similar(content / "billing" / "pay-channels.md", "电费能在银行柜台交吗")
    assert hash_kb.reindex().build.startswith("full")
    assert hash_kb.search("电费能在银行柜台交吗", 1)[0].id == "pay-channels"
