import shutil
from pathlib import Path

import pytest

from indexer.embedders import E5Embedder, HashEmbedder
from kb.knowledge_base import KnowledgeBase

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def e5():
    """The real default model, loaded once per test run."""
    return E5Embedder()


@pytest.fixture
def content(tmp_path) -> Path:
    """A writable copy of the small real content folder."""
    target = tmp_path / "content"
    shutil.copytree(FIXTURES / "content", target)
    return target


@pytest.fixture
def kb(content, tmp_path, e5) -> KnowledgeBase:
    kb = KnowledgeBase(content, tmp_path / "data", e5)
    kb.reindex()
    return kb


@pytest.fixture(scope="session")
def indexed_copy(tmp_path_factory):
    """make(name, embedder): a KnowledgeBase indexed over its own copy of the fixture content,
    for a module whose tests only read, or log (indexing takes seconds: once per module)."""
    def make(name: str, embedder) -> KnowledgeBase:
        root = tmp_path_factory.mktemp(name)
        shutil.copytree(FIXTURES / "content", root / "content")
        kb = KnowledgeBase(root / "content", root / "data", embedder)
        kb.reindex()
        return kb

    return make


@pytest.fixture
def hash_kb(content, tmp_path) -> KnowledgeBase:
    """For tests about storage and caching, not ranking: a counting stand-in embedder."""
    return KnowledgeBase(content, tmp_path / "data", HashEmbedder())


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for every browser test (tests/browsing.py); each test opens its
    own context, so nothing carries over between tests."""
    from browsing import chromium  # Playwright is loaded only when a browser test runs

    with chromium() as browser:
        yield browser
