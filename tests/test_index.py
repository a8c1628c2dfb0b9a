import json

import numpy as np
import pytest
from scipy import sparse

from indexer import segments, snapshot
from indexer.embedders import HashEmbedder
from indexer.lexical import BM25
from kb.errors import ConfigError, CorruptIndex, IndexMismatch, NoIndex
from kb.knowledge_base import KnowledgeBase
from kb.store import Store


def test_first_index_embeds_every_text_once(hash_kb):
    report = hash_kb.reindex()
    assert len(report.added) == 6 and not report.changed and not report.removed
    passages = hash_kb.stats()["passages"]
    assert report.embedded == passages == hash_kb.embedder.texts_encoded


def test_incremental_reindex_embeds_only_what_changed(hash_kb, content):
    hash_kb.reindex()
    model = hash_kb.embedder
    before = model.texts_encoded
    assert hash_kb.reindex().embedded == 0
    assert model.texts_encoded == before

    path = content / "billing" / "pay-channels.md"
    path.write_text(path.read_text(encoding="utf-8").replace(
        "  - 在哪交电费", "  - 在哪交电费\n  - 电费能在银行交吗"), encoding="utf-8")
    report = hash_kb.reindex()
    assert report.changed == ["pay-channels"] and report.unchanged == 5
    assert report.embedded == 1  # only the new similar question
    assert model.texts_encoded == before + 1
    assert hash_kb.search("电费能在银行交吗", 1)[0].id == "pay-channels"


def test_deleted_article_leaves_the_index(hash_kb, content):
    hash_kb.reindex()
    (content / "billing" / "pay-channels.md").unlink()
    report = hash_kb.reindex()
    assert report.removed == ["pay-channels"]
    assert "pay-channels" not in {a["id"] for a in hash_kb.articles()}


def test_full_reindex_embeds_again(hash_kb):
    hash_kb.reindex()
    assert hash_kb.reindex(full=True).embedded == hash_kb.stats()["passages"]


def test_reindex_twice_gives_the_same_result(hash_kb):
    hash_kb.reindex()
    first = [(h.id, round(h.score, 6)) for h in hash_kb.search("电费怎么交", 6)]
    hash_kb.reindex()
    assert [(h.id, round(h.score, 6)) for h in hash_kb.search("电费怎么交", 6)] == first


def test_broken_article_is_skipped_and_reported(hash_kb, content):
    (content / "repair" / "broken.md").write_text("---\nid: [\n---\n", encoding="utf-8")
    report = hash_kb.reindex()
    assert len(report.added) == 6
    assert "broken.md:2" in str(report.errors[0])


def test_an_edit_that_breaks_a_file_keeps_its_last_good_version(hash_kb, content):
    hash_kb.reindex()
    path = content / "repair" / "repair-home-outage.md"
    good = path.read_text(encoding="utf-8")
    path.write_text(good.replace("title: 家中停电如何报修", "title: 家里突然停电了: 怎么报修"),
                    encoding="utf-8")  # a second ': ' makes the line invalid YAML
    report = hash_kb.reindex()
    assert "repair-home-outage.md:3" in str(report.errors[0])
    assert report.kept == {str(path): "repair-home-outage"} and not report.removed
    assert hash_kb.get("repair-home-outage")["title"] == "家中停电如何报修"
    assert hash_kb.search("家中停电如何报修", 1)[0].id == "repair-home-outage"
    assert hash_kb.reindex(full=True).kept == {str(path): "repair-home-outage"}
    assert hash_kb.stats()["articles"] == 6

    path.write_text(good.replace("title: 家中停电如何报修", "title: 家里停电怎么报修"),
                    encoding="utf-8")
    report = hash_kb.reindex()
    assert report.changed == ["repair-home-outage"] and not report.errors and not report.kept
    assert hash_kb.get("repair-home-outage")["title"] == "家里停电怎么报修"


def test_a_copy_with_a_live_id_does_not_replace_the_live_article(hash_kb, content):
    hash_kb.reindex()
    live = content / "repair" / "repair-home-outage.md"
    draft = content / "a-drafts" / "draft.md"  # walks before repair/
    draft.parent.mkdir()
    draft.write_text("---\ntitle: 草稿\nid: repair-home-outage\ncategory: 故障报修\n---\n"
                     "草稿答复，尚未审核\n", encoding="utf-8")
    for full in (False, True):
        report = hash_kb.reindex(full=full)
        assert [str(e) for e in report.errors] == [
            f"{draft}:3: id 'repair-home-outage' is used by {live} too: this file is left "
            "out until its id is changed"]
        assert "草稿" not in hash_kb.get("repair-home-outage")["answer"]
        assert hash_kb.article_file("repair-home-outage") == live


def test_a_missing_content_folder_is_an_error_and_the_live_index_stays(hash_kb, content,
                                                                      tmp_path):
    hash_kb.reindex()
    wrong = KnowledgeBase(tmp_path / "contnet", hash_kb.data_dir, HashEmbedder())
    with pytest.raises(ConfigError, match="contnet cannot be read .*KB_CONTENT_DIR"):
        wrong.reindex()
    for path in content.rglob("*.md"):  # an unmounted share: the folder is there, empty
        path.unlink()
    with pytest.raises(ConfigError, match="holds no articles but the live index has 6"):
        hash_kb.reindex(full=True)
    assert hash_kb.stats()["articles"] == 6
    assert hash_kb.search("停电", 1)[0].id == "repair-home-outage"


def test_interrupted_build_leaves_the_old_index_serving(hash_kb, content, monkeypatch):
    hash_kb.reindex()
    live = hash_kb.stats()["snapshot"]
    (content / "billing" / "pay-channels.md").unlink()

    def crash(folder, manifest):
        raise KeyboardInterrupt("killed while publishing")

    monkeypatch.setattr(snapshot, "publish", crash)
    with pytest.raises(KeyboardInterrupt):
        hash_kb.reindex()
    assert hash_kb.stats()["snapshot"] == live
    assert "pay-channels" in {a["id"] for a in hash_kb.articles()}
    leftovers = [p for p in hash_kb.index_dir.glob("snap-*") if p.name != live]
    assert leftovers and not (leftovers[0] / "manifest.json").exists()

    monkeypatch.undo()
    hash_kb.reindex()
    assert "pay-channels" not in {a["id"] for a in hash_kb.articles()}
    assert not any(p.exists() for p in leftovers)  # the next build cleaned them up


def test_a_killed_full_build_keeps_the_embedding_cache(hash_kb, content, monkeypatch):
    first = hash_kb.reindex()

    def killed(texts, kind):
        raise KeyboardInterrupt("killed while embedding")

    monkeypatch.setattr(hash_kb.embedder, "encode", killed)
    with pytest.raises(KeyboardInterrupt):
        hash_kb.reindex(full=True)
    monkeypatch.undo()
    path = content / "billing" / "pay-channels.md"
    path.write_text(path.read_text("utf-8").replace("  - 在哪交电费", "  - 电费能在银行交吗"),
                    "utf-8")
    assert hash_kb.reindex().embedded == 1  # the rest still cached
    assert hash_kb.reindex(full=True).embedded == first.embedded  # a full build embeds anew
    store = Store(hash_kb.data_dir / "kb.sqlite")
    try:  # the replaced question's vector went with the full build that no longer needed it
        cached = store.db.execute("SELECT count(*) FROM embeddings").fetchone()[0]
    finally:
        store.close()
    assert cached == first.embedded


def test_empty_kb_indexes_and_finds_nothing(tmp_path):
    (tmp_path / "content").mkdir()
    kb = KnowledgeBase(tmp_path / "content", tmp_path / "data", HashEmbedder())
    report = kb.reindex()
    assert report.added == [] and kb.stats()["articles"] == 0
    assert kb.search("停电", 5) == []


def test_search_before_any_index_says_how_to_fix(tmp_path):
    kb = KnowledgeBase(tmp_path / "content", tmp_path / "data", HashEmbedder())
    with pytest.raises(NoIndex, match="kb index"):
        kb.search("停电")


def test_index_refuses_another_embedder(hash_kb, content, tmp_path):
    hash_kb.reindex()
    other = KnowledgeBase(content, tmp_path / "data", HashEmbedder(dim=32))
    with pytest.raises(IndexMismatch, match="hash:64"):
        other.search("停电")


def test_corrupt_index_is_detected_with_a_fix(hash_kb):
    hash_kb.reindex()
    folder = hash_kb.index_dir / hash_kb.stats()["snapshot"]
    (folder / "dense.faiss").unlink()
    fresh = KnowledgeBase(hash_kb.content_dir, hash_kb.data_dir, HashEmbedder())
    with pytest.raises(CorruptIndex, match="kb index --full"):
        fresh.search("停电")


def test_a_missing_ranker_is_a_corrupt_index_and_kb_index_repairs_it(hash_kb):
    hash_kb.reindex()
    folder = hash_kb.index_dir / hash_kb.stats()["snapshot"]
    assert json.loads((folder / "manifest.json").read_text())["ranker"]
    (folder / "ranker.npz").unlink()  # without it the answers would change, silently
    fresh = KnowledgeBase(hash_kb.content_dir, hash_kb.data_dir, HashEmbedder())
    with pytest.raises(CorruptIndex, match="missing ranker.npz.*kb index --full"):
        fresh.search("停电")
    assert fresh.reindex().build == "full: there is no index yet"
    assert fresh.search("停电", 1)


def test_a_build_that_failed_halfway_is_cleared_before_the_next(hash_kb, content, monkeypatch):
    hash_kb.reindex()
    path = content / "billing" / "pay-channels.md"
    path.write_text(path.read_text("utf-8").replace("  - 在哪交电费", "  - 电费能在银行交吗"),
                    "utf-8")
    real = np.save

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", full_disk)
    with pytest.raises(OSError):
        hash_kb.reindex()
    live = hash_kb.stats()["snapshot"]
    halfway = [p for p in hash_kb.index_dir.glob("snap-*") if p.name != live]
    assert halfway and not any((p / "manifest.json").exists() for p in halfway)

    def save_on_a_cleared_disk(*args, **kwargs):  # the space it held is free before we write
        assert not any(p.exists() for p in halfway)
        return real(*args, **kwargs)

    monkeypatch.setattr(np, "save", save_on_a_cleared_disk)
    assert hash_kb.reindex().changed == ["pay-channels"]


def test_a_lexical_file_of_another_size_is_a_corrupt_index(hash_kb, content):
    """A segment's lexical files must have a column per passage: one copied from another
    build parses, and would score the wrong passages."""
    hash_kb.reindex()
    folder = hash_kb.index_dir / hash_kb.stats()["snapshot"]
    index = BM25.load(folder / "chars")
    wider = BM25(index.vocab, index.idf, sparse.hstack([index.weights, index.weights]).tocsr())
    (folder / "chars.npz").unlink()  # the file may be hard-linked into another snapshot
    wider.save(folder / "chars")
    segments._loaded.clear()  # as in a new process: the loaded segment is kept by its uid
    fresh = KnowledgeBase(hash_kb.content_dir, hash_kb.data_dir, HashEmbedder())
    with pytest.raises(CorruptIndex, match=r"chars.npz has \d+ passages.*kb index --full"):
        fresh.search("停电")


def test_manifest_records_the_build(hash_kb):
    hash_kb.reindex()
    folder = hash_kb.index_dir / hash_kb.stats()["snapshot"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["embedder"] == "hash:64" and manifest["dim"] == 64
    assert manifest["articles"] == 6 and manifest["vector_index"] == "flat"
    assert len(manifest["content_hash"]) == 16


def test_embedding_cache_survives_a_new_kb_object(hash_kb, content, tmp_path):
    hash_kb.reindex()
    again = KnowledgeBase(content, tmp_path / "data", HashEmbedder())
    assert again.reindex(full=False).embedded == 0


def test_a_request_cuts_its_query_with_the_snapshot_it_scores_on(hash_kb, content):
    """A new dictionary word published mid-request must not cut the query for an older
    snapshot: kb.prepare takes the searcher the request holds."""
    hash_kb.reindex()
    held = hash_kb.searcher()
    before = hash_kb.prepare("峰谷平段电价", held).words
    with open(content / "_dict" / "userdict.txt", "a", encoding="utf-8") as fh:
        fh.write("\n峰谷平段\n")
    hash_kb.reindex()
    assert hash_kb.searcher() is not held
    assert "峰谷平段" in hash_kb.prepare("峰谷平段电价").words
    assert hash_kb.prepare("峰谷平段电价", held).words == before
    assert "峰谷平段" not in before


@pytest.mark.parametrize("pointer", [b"\xff\xfe\x00snap", b"../../etc", b"", b".hidden"])
def test_a_damaged_pointer_file_says_how_to_rebuild(hash_kb, pointer):
    hash_kb.reindex()
    (hash_kb.index_dir / snapshot.POINTER).write_bytes(pointer)
    fresh = KnowledgeBase(hash_kb.content_dir, hash_kb.data_dir, HashEmbedder())
    with pytest.raises(CorruptIndex, match="kb index --full"):
        fresh.search("电费怎么交")
    fresh.reindex(full=True)
    assert len(fresh.search("电费怎么交", 6)) == 6
