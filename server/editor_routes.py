"""The editors' endpoints and page: thin adapters over kb.editing.Editor.

Writes need a bearer token from KB_EDITOR_TOKENS / KB_EDITOR_TOKENS_FILE; reads and hit testing
are as open as search (open unless KB_AGENT_TOKENS is set; server/auth.py). Hit testing runs the
agents' search code path, call for call."""

import os
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse

from kb.config import Settings
from kb.editing import Editor, Saved, draft
from kb.errors import ArticleExists, FieldProblem, InvalidArticle, StaleVersion, VersionRequired
from kb.knowledge_base import KnowledgeBase
from kb.render import render_html
from kb.watcher import ContentWatcher
from server.auth import require_editor, require_reader
from server.editor_schemas import (
    ArticleIn,
    ArticleSummary,
    EditResult,
    EvalQueryIn,
    EvalQueryOut,
    HitTestResponse,
    HitTestResult,
    RenderIn,
    RenderOut,
    SavedTestsOut,
    ScorePart,
)
from server.schemas import ArticleOut, Matched, RelatedArticle

STATIC = Path(__file__).parent / "static"
ID_RE = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
ArticleId = Annotated[str, PathParam(max_length=80, pattern=ID_RE)]
IfMatch = Annotated[str | None, Header(description="the ETag the edit was made from")]


def install(app: FastAPI, settings: Settings, kb: KnowledgeBase) -> Editor:
    """Add the editor routes, their error responses and, if settings.watch, the watcher."""
    editor = Editor(kb)
    app.state.editor = editor
    app.include_router(editor_router(editor, kb, require_editor(settings.editor_token_list()),
                                     require_reader(settings)))
    for error, status in ((InvalidArticle, 422), (VersionRequired, 428), (StaleVersion, 412),
                          (ArticleExists, 409)):
        app.add_exception_handler(error, _error_response(status))
    if settings.watch:
        watcher = ContentWatcher(kb)
        app.state.watchers.append(watcher)  # /readyz tells when indexing is stuck
        app.router.add_event_handler("startup", watcher.start)
        app.router.add_event_handler("shutdown", watcher.stop)
    return editor


def _error_response(status: int):
    def handle(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, InvalidArticle):  # the shape FastAPI gives its own 422s
            detail = [{"loc": ["body", p.field], "msg": p.message, "type": p.code,
                       "ctx": dict(p.params)} for p in exc.problems]
            return JSONResponse({"detail": detail}, status_code=status)
        headers = {"ETag": f'"{exc.current}"'} if isinstance(exc, StaleVersion) else None
        return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)

    return handle


def editor_router(editor: Editor, kb: KnowledgeBase, editor_check, reader_check) -> APIRouter:
    """The routes; the checks are server/auth.py's dependencies for writes and for reads."""
    r = APIRouter()
    editing, reading = [Depends(editor_check)], [Depends(reader_check)]

    def relative(path: str) -> str:
        return os.path.relpath(path, kb.content_dir)

    def result(saved: Saved, response: Response, with_article: bool = True) -> EditResult:
        if saved.etag:
            response.headers["ETag"] = f'"{saved.etag}"'
        return EditResult(
            id=saved.article.id, etag=saved.etag, path=relative(saved.path),
            warnings=saved.warnings, snapshot=kb.searcher().folder.name,
            index_ms=round(saved.seconds * 1000, 1),
            article=_article_out(kb, saved.article.id) if with_article else None,
            saved_tests=SavedTestsOut(**asdict(saved.saved_tests)) if saved.saved_tests else None,
        )

    @r.get("/editor", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "editor.html")

    @r.get("/api/articles", response_model=list[ArticleSummary], tags=["editor"],
           dependencies=reading)
    def list_articles():
        """Every indexed article, for the editor's list (open, as search is)."""
        files = kb.article_files()  # where the files are now, not where the index was built
        return [ArticleSummary(
            id=a["id"], title=a["title"], category=a["category"], tags=a["tags"],
            similar=a["similar"], effective=a["effective"], effective_to=a["effective_to"],
            path=relative(files.get(a["id"], a["path"])), etag=a["content_hash"])
            for a in kb.articles()]

    @r.post("/api/articles", status_code=201, response_model=EditResult, tags=["editor"],
            dependencies=editing)
    def create(body: ArticleIn, response: Response):
        """A new article: content/<the category's folder or 'editor'>/<id>.md, then indexed."""
        if not body.id:
            raise InvalidArticle([FieldProblem(
                "id", "'id' is required: lowercase letters, digits and '-'", "required",
                {"field": "id"})])
        saved = editor.create(draft(**body.model_dump()))
        response.headers["Location"] = f"/api/articles/{saved.article.id}"
        return result(saved, response)

    @r.put("/api/articles/{article_id}", response_model=EditResult, tags=["editor"],
           dependencies=editing)
    def update(article_id: ArticleId, body: ArticleIn, response: Response,
               if_match: IfMatch = None):
        """Replace an article; If-Match must carry the ETag it was edited from."""
        values = body.model_dump() | {"id": body.id or article_id}
        return result(editor.update(article_id, draft(**values), if_match), response)

    @r.delete("/api/articles/{article_id}", response_model=EditResult, tags=["editor"],
              dependencies=editing)
    def delete(article_id: ArticleId, response: Response, if_match: IfMatch = None):
        """Remove an article's file and take it out of search; If-Match as for PUT."""
        return result(editor.delete(article_id, if_match), response, with_article=False)

    @r.post("/api/render", response_model=RenderOut, tags=["editor"], dependencies=editing)
    def render(body: RenderIn):
        """Markdown to the sanitised HTML agents will see: the editor's live preview."""
        return RenderOut(html=render_html(body.markdown))

    @r.get("/api/hittest", response_model=HitTestResponse, tags=["editor"], dependencies=reading)
    def hittest(
        q: Annotated[str, Query(description="a caller's question, as an agent would type it")],
        k: Annotated[int, Query(ge=1, le=50)] = 10,
        category: Annotated[str | None, Query(max_length=50)] = None,
        expected: Annotated[str | None, Query(max_length=80, pattern=ID_RE)] = None,
    ):
        """What the agents' search returns for q, with every score; `expected` also gives the
        rank of that article within the first 50. The calls are the ones /api/search makes."""
        searcher = kb.searcher()
        query = kb.prepare(q, searcher)
        hits = searcher.search_query(query, max(k, 50) if expected else k, category or None)
        rows = [HitTestResult(
            rank=n, id=h.id, title=h.title, category=h.category, score=round(h.score, 4),
            lexical=round(h.lexical, 4), dense=round(h.dense, 4), confident=h.confident,
            parts={n: ScorePart(share=round(w, 4), value=round(v, 4))
                   for n, (w, v) in h.parts.items()},
            matched=Matched(kind=h.matched_kind, text=h.matched_text),
        ) for n, h in enumerate(hits, start=1)]
        return HitTestResponse(
            query=q, normalized=query.text, threshold=searcher.params.confident_at,
            confident=bool(hits and hits[0].confident), results=rows[:k],
            expected=next((x for x in rows if x.id == expected), None),
        )

    @r.post("/api/eval-queries", response_model=EvalQueryOut, tags=["editor"],
            dependencies=editing)
    def save_eval_query(body: EvalQueryIn):
        """Keep a hit-test query and its expected article in content/_eval/saved.jsonl, which
        `kb eval` runs again."""
        path, count = editor.save_eval_query(body.query, body.expected)
        return EvalQueryOut(path=relative(str(path)), queries=count)

    return r


def _article_out(kb: KnowledgeBase, article_id: str) -> ArticleOut:
    searcher = kb.searcher()
    a = kb.get(article_id, searcher)
    related = [RelatedArticle(id=i, title=searcher.articles[searcher.by_id[i]]["title"])
               for i in a.get("related") or [] if i in searcher.by_id]
    return ArticleOut(**{k: a[k] for k in ArticleOut.model_fields if k != "related"},
                      related=related)
