"""FastAPI app: routes parse input, call KnowledgeBase once, and shape the answer."""

from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from kb.config import Settings
from kb.errors import BadQuery, KBError, NotFound
from kb.knowledge_base import KnowledgeBase
from kb.watcher import ContentWatcher
from server.auth import reader_check, redact_access_log, require_reader
from server.editor_routes import install as install_editor
from server.limits import BodyLimit, invalid_request
from server.log_routes import AgentHeader, AgentParam, agent_id
from server.log_routes import install as install_log
from server.schemas import ArticleOut, Category, Health, Ready, SearchResponse
from server.search_route import SearchFastPath, answer, related
from server.tuning import tune_for_serving

STATIC = Path(__file__).parent / "static"
ID_RE = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"


def create_app(settings: Settings | None = None, kb: KnowledgeBase | None = None) -> FastAPI:
    settings = settings or Settings()
    kb = kb or KnowledgeBase(
        settings.content_dir, settings.data_dir, settings.embedder,
        to_simplified=settings.traditional_to_simplified,
        max_query_chars=settings.max_query_chars,
    )
    app = FastAPI(title="95598 知识库", version="0.1.0",
                  description="Standard answers for 95598 agents, ranked as they type.")
    app.state.kb = kb
    redact_access_log()
    querylog = install_log(app, settings, kb)  # feedback, events, /reports; None when off
    # Innermost, so the body limit and CORS apply to what it answers.
    app.add_middleware(SearchFastPath, kb=kb, querylog=querylog, allows=reader_check(settings))
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)  # server/limits.py
    if settings.cors_origin_list():  # added last, so it is outermost: a 413 carries it too
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origin_list(),
                           allow_methods=["GET", "POST", "PUT", "DELETE"],
                           allow_headers=["Authorization", "Content-Type", "If-Match",
                                          "X-Agent-Id"],
                           expose_headers=["ETag"])

    app.router.add_event_handler("startup", tune_for_serving)  # server/tuning.py

    repair = ContentWatcher(kb)
    app.state.watchers = [repair]

    def load_index():
        try:
            kb.searcher()
        except KBError:
            return  # /readyz says why; searches answer 503 until `kb index` has built one
        if not settings.watch:
            # The watcher's first pass indexes a file written but not indexed before a crash.
            # Without a watcher, run that one pass in the background: agents are served from
            # the loaded index meanwhile.
            repair.start(once=True)

    app.router.add_event_handler("startup", load_index)
    app.router.add_event_handler("shutdown", repair.stop)

    app.add_exception_handler(RequestValidationError, invalid_request)

    @app.exception_handler(KBError)
    def kb_error(request: Request, exc: KBError):
        status = 422 if isinstance(exc, BadQuery) else 404 if isinstance(exc, NotFound) else 503
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @app.get("/healthz", response_model=Health)
    def healthz():
        return Health(status="ok")

    @app.get("/readyz", response_model=Ready)
    def readyz():
        try:
            s = kb.searcher()
        except KBError as exc:
            return JSONResponse(Ready(ready=False, detail=str(exc)).model_dump(), status_code=503)
        # Still ready: agents are served from the live index; edits just do not reach it.
        stuck = next((w.last_error for w in app.state.watchers if w.last_error), None)
        return Ready(ready=True, snapshot=s.folder.name, articles=len(s.articles),
                     embedder=s.manifest["embedder"], indexing_error=stuck)

    reading = [Depends(require_reader(settings))]  # open unless KB_AGENT_TOKENS is set

    @app.get("/api/search", response_model=SearchResponse, dependencies=reading)
    def search(
        q: Annotated[str, Query(description="the caller's question, as typed")],
        k: Annotated[int, Query(ge=1, le=50)] = 10,
        category: Annotated[str | None, Query(max_length=50)] = None,
        agent: AgentParam = None,
        x_agent_id: AgentHeader = None,
    ):
        # Mostly answered by SearchFastPath before it gets here (server/search_route.py).
        return Response(answer(kb, querylog, q, k, category, agent_id(agent, x_agent_id)),
                        media_type="application/json")

    @app.get("/api/articles/{article_id}", response_model=ArticleOut, dependencies=reading)
    def article(article_id: Annotated[str, PathParam(max_length=80, pattern=ID_RE)],
                response: Response):
        searcher = kb.searcher()
        a = kb.get(article_id, searcher)
        response.headers["ETag"] = f'"{a["content_hash"]}"'  # the If-Match of an edit
        return ArticleOut(**{k: a[k] for k in ArticleOut.model_fields if k != "related"},
                          related=related(searcher, a, []))

    @app.get("/api/categories", response_model=list[Category], dependencies=reading)
    def categories():
        counts: dict[str, int] = {}
        for a in kb.articles():
            counts[a["category"]] = counts.get(a["category"], 0) + 1
        return [Category(name=n, articles=c) for n, c in sorted(counts.items())]

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html")

    install_editor(app, settings, kb)  # /editor, article writes, hit testing, the watcher
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app

