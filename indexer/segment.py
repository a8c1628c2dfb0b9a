"""Segmentation: jieba words (with the domain dictionary) and character n-grams."""

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

import jieba

_WORD_RE = re.compile(r"\w", re.UNICODE)
STOPWORDS = frozenset(
    "的 了 吗 呢 啊 吧 呀 嘛 哦 噢 哈 么 着 过 和 与 及 或 在 是 我 你 您 "
    "他 她 它 我们 你们 这 那 这个 这样 一下 一个 有 就 都 也 还 又 把 被 "
    "给 对 让 向 从 到 请 上 下 个 之 其 啥子".split()
)


@dataclass
class Segmenter:
    """A jieba tokenizer of its own (not the global one), so two knowledge bases never mix
    dictionaries, plus synonym groups for query expansion."""

    terms: list[str] = field(default_factory=list)
    synonyms: list[list[str]] = field(default_factory=list)

    def __post_init__(self):
        words = {*self.terms, *(t for group in self.synonyms for t in group)}
        self._jieba = _tokenizer(tuple(sorted(t for t in words if len(t) > 1)))
        self._group_of = {}
        for group in self.synonyms:
            for term in group:
                self._group_of.setdefault(term, group)

    def words(self, text: str) -> list[str]:
        """jieba search-mode words (long words and their parts), minus stopwords and marks."""
        return [
            w for w in self._jieba.cut_for_search(text)
            if w.strip() and _WORD_RE.search(w) and w not in STOPWORDS
        ]

    def expand(self, words: list[str]) -> list[str]:
        """Synonyms of the query words that the query does not already hold."""
        present = set(words)
        extra = []
        for w in words:
            for syn in self._group_of.get(w, ()):
                if syn not in present:
                    present.add(syn)
                    extra.append(syn)
        return extra


@functools.lru_cache(maxsize=1)
def _pristine() -> jieba.Tokenizer:
    jieba.setLogLevel(60)
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    return tokenizer


@functools.lru_cache(maxsize=4)
def _tokenizer(words: tuple[str, ...]) -> jieba.Tokenizer:
    """A tokenizer with the domain words added, shared by segmenters with the same words.
    It starts from a copy of one loaded jieba dictionary: reading the dictionary takes half a
    second, copying it a hundredth, which keeps reloading an index after an update fast."""
    base = _pristine()
    tokenizer = jieba.Tokenizer()
    tokenizer.FREQ, tokenizer.total, tokenizer.initialized = dict(base.FREQ), base.total, True
    for word in words:
        tokenizer.add_word(word, freq=2000)
    return tokenizer


def char_grams(text: str) -> list[str]:
    """Character unigrams and bigrams over runs of word characters (CJK, letters, digits)."""
    grams = []
    for run in re.findall(r"\w+", text):
        grams.extend(run)
        grams.extend(run[i : i + 2] for i in range(len(run) - 1))
    return grams


def load_dictionary(dict_dir: Path) -> tuple[list[str], list[list[str]]]:
    """userdict.txt terms and synonyms.txt groups; missing files mean an empty dictionary."""
    terms, groups = [], []
    userdict = dict_dir / "userdict.txt"
    if userdict.exists():
        for line in userdict.read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                terms.append(line.split()[0])
    synonyms = dict_dir / "synonyms.txt"
    if synonyms.exists():
        for line in synonyms.read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            group = [t for t in re.split(r"[,，/、\s]+", line) if t]
            if len(group) > 1:
                groups.append(group)
    return terms, groups
