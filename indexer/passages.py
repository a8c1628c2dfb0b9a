"""Passages: the pieces of an article that are matched against a query."""

import re

from kb.article import Article

CHUNK_CHARS = 160
_SENTENCE_END = re.compile(r"(?<=[。！？；!?;\n])")
_MARKDOWN = re.compile(r"[#>*_`|\[\]()-]+")

QUESTION_KINDS = ("title", "similar")


def plain_text(markdown_text: str) -> str:
    """Markdown without its markup, for matching (not for display)."""
    text = re.sub(r"\]\([^)]*\)", "]", markdown_text)  # keep link text, drop the address
    return re.sub(r"\s+", " ", _MARKDOWN.sub(" ", text)).strip()


def chunk(text: str, size: int = CHUNK_CHARS) -> list[str]:
    """Split at sentence ends into pieces of about `size` characters."""
    pieces, current = [], ""
    for sentence in _SENTENCE_END.split(text):
        if current and len(current) + len(sentence) > size:
            pieces.append(current.strip())
            current = ""
        current += sentence
    if current.strip():
        pieces.append(current.strip())
    return [p for p in pieces if p]


def article_passages(article: Article) -> list[tuple[str, str]]:
    """(kind, text) pairs: the title, each similar question, and the answer in chunks."""
    rows = [("title", article.title)]
    rows += [("similar", q) for q in article.similar]
    rows += [("answer", piece) for piece in chunk(plain_text(article.answer))]
    return rows
