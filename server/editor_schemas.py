"""Request and response models of the editor endpoints (server/editor_routes.py)."""

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from server.schemas import ArticleOut, Matched

Short = Annotated[str, StringConstraints(max_length=200)]


class ArticleIn(BaseModel):
    """An article as the editor form sends it; the whole article, also on PUT."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(None, max_length=80,
                           description="lowercase letters, digits and '-'; required on POST")
    title: str = Field(max_length=200, description="the standard question")
    category: str = Field(max_length=50)
    tags: list[Short] = Field(default_factory=list, max_length=50)
    similar: list[Short] = Field(default_factory=list, max_length=500,
                                 description="相似问法, one question an entry")
    answer: str = Field(max_length=20_000, description="the standard answer, Markdown")
    basis: str = Field("", max_length=20_000, description="the rule it rests on, Markdown")
    effective: dt.date | None = None
    effective_to: dt.date | None = None
    related: list[Short] = Field(default_factory=list, max_length=50)


class ArticleSummary(BaseModel):
    id: str
    title: str
    category: str
    tags: list[str]
    similar: list[str]
    effective: str | None
    effective_to: str | None
    path: str = Field(description="the file, relative to the content folder")
    etag: str = Field(description="the version, as GET /api/articles/{id} gives it")


class BrokenTest(BaseModel):
    query: str
    expected: list[str]
    got: str | None = Field(description="the article ranked first instead; null: no result")
    rank: int | None = Field(description="the expected article's rank; null: not in the top 10")


class SavedTestsOut(BaseModel):
    checked: int = Field(description="saved hit tests run on the new index")
    skipped: int = Field(description="older saved hit tests beyond the limit, not run")
    broken: list[BrokenTest] = Field(
        description="those whose expected article is no longer first; empty: all hold")


class EditResult(BaseModel):
    id: str
    etag: str = Field(description="the new version; empty after a delete")
    path: str
    warnings: list[str]
    snapshot: str | None = Field(description="the index snapshot that holds the change")
    index_ms: float = Field(description="from the write to the change being searchable")
    article: ArticleOut | None = None
    saved_tests: SavedTestsOut | None = Field(
        None, description="content/_eval/saved.jsonl run again after the write; null when "
                          "nothing is saved or nothing changed")


class RenderIn(BaseModel):
    markdown: str = Field(max_length=50_000)


class RenderOut(BaseModel):
    html: str = Field(description="sanitised HTML, as the agents' page shows it")


class ScorePart(BaseModel):
    share: float = Field(description="this signal's weight over the weights in play")
    value: float


class HitTestResult(BaseModel):
    rank: int
    id: str
    title: str
    category: str
    score: float = Field(description="the fused score: the sum of share x value of its parts")
    lexical: float
    dense: float
    parts: dict[str, ScorePart] = Field(
        description="each signal in play: dense (cosine), chars and words (BM25, 0-1), learned "
                    "(the ranker's probability)")
    confident: bool = Field(description="whether the score clears the confidence threshold")
    matched: Matched


class HitTestResponse(BaseModel):
    query: str
    normalized: str
    threshold: float = Field(description="the fused score a result needs to be confident")
    confident: bool
    results: list[HitTestResult]
    expected: HitTestResult | None = Field(
        None, description="the expected article, where it ranks within the first 50")


class EvalQueryIn(BaseModel):
    query: str = Field(min_length=1, max_length=200)
    expected: list[Short] = Field(min_length=1, max_length=10)


class EvalQueryOut(BaseModel):
    path: str
    queries: int
