"""Synthetic knowledge bases for the speed benchmark, made by recombining real article text.

Titles and similar questions are a front part of one real question joined to the back part of
another (cut at a jieba word boundary); answers are real answer sentences of the same category
strung together; the basis is one real basis line. Everything comes from one seeded
random.Random, so the same seed and sources give the same articles, and the first n articles of
a large set are exactly the set of size n (the 10,000 set is a subset of the 50,000 set, which
lets the embedding cache carry over between sizes)."""

import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import jieba

from kb.article import Article, dump_article, load_folder

SIMILAR = 5
_CLAUSE_END = re.compile(r"(?<=[。！？；!?;])")
_NUMBER = re.compile(r"\d+")


@dataclass
class Sources:
    """Real text to recombine, grouped by category."""

    questions: dict[str, list[str]] = field(default_factory=dict)  # category -> questions
    answers: dict[str, list[str]] = field(default_factory=dict)  # category -> sentences
    basis: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)

    @classmethod
    def from_folders(cls, folders: list[Path], phrasings: list[str] = ()) -> "Sources":
        src = cls()
        for folder in folders:
            articles, _ = load_folder(folder)
            for a in articles:
                src.questions.setdefault(a.category, []).extend(a.questions)
                src.answers.setdefault(a.category, []).extend(sentences(a.answer))
                src.basis.extend(line.strip("- ").strip() for line in a.basis.splitlines()
                                 if len(line.strip("- ").strip()) > 6)
                src.tags.extend(a.tags)
        extra = sorted({p for p in phrasings if 4 <= len(p) <= 40})
        src.questions = {c: sorted(set(q) | set(extra[i :: len(src.questions)]))
                         for i, (c, q) in enumerate(sorted(src.questions.items()))}
        src.answers = {c: sorted(set(s)) for c, s in src.answers.items() if s}
        src.categories = sorted(src.answers)
        src.basis = sorted(set(src.basis))
        src.tags = sorted(set(src.tags))
        return src


def sentences(markdown_text: str) -> list[str]:
    out = []
    for line in markdown_text.splitlines():
        line = re.sub(r"^\s*(?:[-*]|\d+\.)\s*", "", line).strip()
        out.extend(s.strip() for s in _CLAUSE_END.split(line) if len(s.strip()) > 4)
    return out


class Recombiner:
    def __init__(self, sources: Sources, seed: int = 95598):
        self.src = sources
        self.rng = random.Random(seed)
        self._all = sorted({q for qs in sources.questions.values() for q in qs})
        self._cuts = {q: _cut_points(q) for q in self._all}
        self._seen: set[str] = set()

    def question(self, category: str) -> str:
        """The front of a real question of the category and the back of any real question;
        a question already made is made again, as a knowledge base holds each question once."""
        pool = self.src.questions[category]
        for _ in range(50):
            a, b = self.rng.choice(pool), self.rng.choice(self._all)
            q = a[: self.rng.choice(self._cuts[a])] + b[self.rng.choice(self._cuts[b]) :]
            if q not in self._seen:
                break
        self._seen.add(q)
        return q

    def answer(self, category: str) -> str:
        pool = self.src.answers[category]
        parts = self.rng.sample(pool, k=min(len(pool), self.rng.randint(3, 6)))
        # A number changed here and there keeps recombined answers from repeating verbatim.
        parts = [_NUMBER.sub(lambda m: str(int(m.group()) + self.rng.randint(0, 3)), p)
                 for p in parts]
        return "您好，" + "".join(p if p[-1] in "。！？；" else p + "。" for p in parts)

    def article(self, n: int) -> Article:
        category = self.rng.choice(self.src.categories)
        title = self.question(category)
        similar: list[str] = []
        while len(similar) < SIMILAR:
            q = self.question(category)
            if q != title and q not in similar:
                similar.append(q)
        return Article(
            id=f"syn-{n:06d}", title=title, category=category,
            answer=self.answer(category), basis=self.rng.choice(self.src.basis),
            tags=tuple(self.rng.sample(self.src.tags, k=2)), similar=tuple(similar),
        )


def _cut_points(question: str) -> list[int]:
    """Word boundaries in the middle of the question, so a cut never splits a word and both
    halves keep some meaning."""
    points, pos, n = [], 0, len(question)
    for word in jieba.cut(question):
        pos += len(word)
        if n * 0.3 <= pos <= n * 0.7:
            points.append(pos)
    return points or [n // 2]


def generate(sources: Sources, count: int, seed: int = 95598) -> list[Article]:
    maker = Recombiner(sources, seed)
    return [maker.article(n) for n in range(count)]


def write(articles: list[Article], content_dir: Path, start: int = 0,
          per_folder: int = 1000) -> list[Path]:
    """One file per article, a thousand to a folder, as a large content tree would be kept;
    `start` is the number of the first article, for adding to a tree already written."""
    paths = []
    for n, a in enumerate(articles, start=start):
        folder = content_dir / f"part-{n // per_folder:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{a.id}.md"
        path.write_text(dump_article(a), encoding="utf-8")
        paths.append(path)
    return paths


def queries(sources: Sources, articles: list[Article], count: int, seed: int = 7) -> list[str]:
    """Distinct queries as agents type them: a similar question or title of a random article,
    often cut short (half a question), sometimes with a filler, sometimes a fresh mix."""
    rng = random.Random(seed)
    fillers = ["", "", "", "你好，", "请问", "我想问一下", "那个"]
    seen: set[str] = set()
    out: list[str] = []
    maker = Recombiner(sources, seed + 1)
    while len(out) < count:
        a = rng.choice(articles)
        roll = rng.random()
        if roll < 0.15:
            q = maker.question(a.category)
        else:
            q = rng.choice(a.questions)
            if roll < 0.55 and len(q) > 6:
                q = q[: rng.randint(4, len(q) - 1)]
        q = rng.choice(fillers) + q
        if q not in seen:
            seen.add(q)
            out.append(q)
    return out
