"""API response models: what clients see, kept apart from the stored records."""

from pydantic import BaseModel, Field


class Matched(BaseModel):
    kind: str = Field(description="title, similar or answer")
    text: str


class RelatedArticle(BaseModel):
    id: str
    title: str


class SearchResult(BaseModel):
    id: str
    title: str
    category: str
    score: float
    lexical: float
    dense: float
    confident: bool
    matched: Matched
    answer: str = Field(description="the standard answer, Markdown")
    answer_html: str = Field(description="the standard answer, sanitised HTML")
    basis_html: str
    related: list[RelatedArticle]


class SearchResponse(BaseModel):
    query: str
    normalized: str
    terms: list[str] = Field(description="query words to highlight")
    confident: bool = Field(description="whether the top result clears the confidence threshold")
    results: list[SearchResult]
    query_id: str | None = Field(None, description="names this search in POST /api/feedback "
                                 "and /api/events; null when the query log is off")


class ArticleOut(BaseModel):
    id: str
    title: str
    category: str
    tags: list[str]
    similar: list[str]
    answer: str
    answer_html: str
    basis: str
    basis_html: str
    effective: str | None
    effective_to: str | None
    related: list[RelatedArticle]


class Category(BaseModel):
    name: str
    articles: int


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    ready: bool
    snapshot: str | None = None
    articles: int = 0
    embedder: str | None = None
    detail: str | None = None
    indexing_error: str | None = Field(
        None, description="why changes to content/ are not being indexed, while that lasts")
