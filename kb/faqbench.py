"""`kb bench faq`: a throw-away KB from a folder shaped like ../shared/bench/* (kb.jsonl and
queries.jsonl), indexed and evaluated with the same code agents search with."""

import json
import re
from pathlib import Path

from kb.article import Article, dump_article
from kb.errors import KBError


def faq_articles(kb_jsonl: Path) -> list[Article]:
    """Articles from {"id", "question", "answer", "category", "similar"} lines."""
    articles = []
    for n, line in enumerate(Path(kb_jsonl).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            articles.append(Article(
                id=slug(str(row["id"])),
                title=str(row["question"]).strip(),
                category=str(row.get("category") or "未分类"),
                answer=str(row.get("answer") or "").strip() or "（无答案）",
                similar=tuple(dict.fromkeys(s.strip() for s in row.get("similar") or []
                                            if s.strip() and s.strip() != row["question"])),
            ))
        except (ValueError, KeyError, TypeError) as exc:
            raise KBError(f"{kb_jsonl}:{n}: not a knowledge-base line ({exc})") from None
    return articles


def slug(raw: str) -> str:
    """A bench id as an article id: lower case, '_' and other marks become '-'."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", raw.lower())).strip("-") or "x"


def write_content(articles: list[Article], content_dir: Path) -> None:
    content_dir.mkdir(parents=True, exist_ok=True)
    for a in articles:
        (content_dir / f"{a.id}.md").write_text(dump_article(a), encoding="utf-8")


def faq_queries(queries_jsonl: Path) -> list[dict]:
    from kb.evaluate import read_queries

    rows = read_queries(queries_jsonl)
    return [{"query": r["query"], "expected": [slug(e) for e in r["expected"]]} for r in rows]
