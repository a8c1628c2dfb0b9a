"""Text normalisation shared by indexing and querying, so both sides see the same text."""

import functools
import hashlib
import re
import unicodedata

# Words a caller or agent puts around the question that carry no meaning for retrieval.
# Intent words (怎么, 多久, 为什么, 能不能) are kept: they separate near-duplicate articles.
FILLERS = (
    "我想问一下", "我想问下", "我想咨询一下", "我想咨询", "想咨询一下", "想问一下", "想问下",
    "咨询一下", "请问一下", "请问", "问一下", "问下", "麻烦问一下", "麻烦你", "麻烦您", "麻烦",
    "你好", "您好", "喂", "那个", "就是说", "就是", "嗯", "呃", "谢谢", "打扰了",
)
_FILLER_RE = re.compile("|".join(sorted(map(re.escape, FILLERS), key=len, reverse=True)))
_SPACE_RE = re.compile(r"\s+")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@functools.cache
def _t2s():
    from opencc import OpenCC

    return OpenCC("t2s")


def normalize(text: str, to_simplified: bool = True) -> str:
    """Full-width to half-width, lower case, controls dropped, spaces folded."""
    text = unicodedata.normalize("NFKC", text)
    text = _CONTROL_RE.sub(" ", text).lower()
    if to_simplified and any("\u4e00" <= ch <= "\u9fff" for ch in text):
        text = _t2s().convert(text)
    return _SPACE_RE.sub(" ", text).strip()


def strip_fillers(text: str) -> str:
    """Drop politeness and hesitation words from a query; keep the text if nothing would remain."""
    stripped = _SPACE_RE.sub(" ", _FILLER_RE.sub(" ", text)).strip(" ,.?!，。？！、~")
    return stripped if has_content(stripped) else text


def has_content(text: str) -> bool:
    """True when the text holds at least one letter, digit or CJK character."""
    return any(ch.isalnum() for ch in text)


def question_key(text: str) -> str:
    """What makes two questions the same question: normalised, without fillers or end marks."""
    return strip_fillers(normalize(text)).rstrip("?？。!！ ")


def key_hash(key: str) -> int:
    """A question key as a signed 64-bit number (never 0, which marks "not a question")."""
    value = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little",
                           signed=True)
    return value or 1
