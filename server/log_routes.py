"""Agent feedback, article events and the monthly reports page: thin adapters over
kb.querylog.QueryLog and kb.report. The search route logs through the QueryLog `install`
returns; every write is queued, so none of these routes waits for the disk."""

import re
from html import escape
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse

from kb.config import Settings
from kb.knowledge_base import KnowledgeBase
from kb.querylog import LOG_FILE, LogSettings, QueryLog
from kb.report import build_report, month_signature, months
from kb.report_render import render_html
from server.auth import page_guard, require_reader
from server.log_schemas import EventIn, FeedbackIn, Logged

AGENT_RE = re.compile(r"[\w.@-]{1,64}")  # fullmatch: "$" would let "A042\n" through
MONTH = r"^\d{4}-(0[1-9]|1[0-2])$"
# No max_length: a page given a bad id in its address (say 65 characters) would have
# every call refused, and agent_id() drops such an id anyway.
AgentParam = Annotated[str | None, Query(description="the agent's id (letters, digits, _.@-; at "
                                         "most 64); a malformed one is ignored")]
AgentHeader = Annotated[str | None, Header(description="the agent's id, if not in the query "
                                           "(Latin-1 only: send 张三 as ?agent=)")]
PAGE = ("<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'><title>{title}</title>"
        "<style>body{{font-family:'WenQuanYi Micro Hei','Noto Sans CJK SC','Microsoft YaHei',"
        "sans-serif;max-width:720px;margin:40px auto;padding:0 20px;color:#1f2933}}"
        "li{{margin:8px 0}}a{{color:#1d4ed8}}.muted{{color:#6b7280}}</style></head>"
        "<body><h1>{title}</h1>{body}</body></html>")


def agent_id(*candidates: str | None) -> str | None:
    """The first well-formed agent id given; a malformed one is ignored, never refused."""
    return next((c for c in candidates if c and AGENT_RE.fullmatch(c)), None)


def install(app: FastAPI, settings: Settings, kb: KnowledgeBase) -> QueryLog | None:
    """Add the routes; start the log writer unless KB_QUERY_LOG is off."""
    querylog = None
    if settings.query_log:
        querylog = QueryLog(LogSettings(kb.data_dir / LOG_FILE, settings.log_retention_days,
                                        settings.timezone))
        app.router.add_event_handler("shutdown", querylog.close)
    app.state.querylog = querylog
    app.include_router(log_router(querylog, kb, settings))
    return querylog


def log_router(querylog: QueryLog | None, kb: KnowledgeBase, settings: Settings) -> APIRouter:
    router = APIRouter()
    path = kb.data_dir / LOG_FILE
    cache: dict[str, tuple[tuple, str]] = {}
    reading = [Depends(require_reader(settings))]  # as search: open unless KB_AGENT_TOKENS
    guard = page_guard(settings)  # the same tokens, as a header or a cookie

    @router.post("/api/feedback", response_model=Logged, tags=["log"], dependencies=reading)
    def feedback(body: FeedbackIn, agent: AgentParam = None, x_agent_id: AgentHeader = None):
        """An agent's verdict on an answer: 有用 (useful) or 没用, with an optional comment."""
        kb.get(body.article_id)  # 404 for an unknown article
        if querylog is None:
            return Logged(logged=False)
        return Logged(logged=querylog.log_feedback(
            body.query_id, body.article_id, body.useful, body.comment,
            agent_id(agent, x_agent_id)))

    @router.post("/api/events", response_model=Logged, tags=["log"], dependencies=reading)
    def event(body: EventIn, agent: AgentParam = None, x_agent_id: AgentHeader = None):
        """The agent opened an article of a search, or copied its script."""
        kb.get(body.article_id)
        if querylog is None:
            return Logged(logged=False)
        return Logged(logged=querylog.log_event(body.query_id, body.article_id, body.kind,
                                                agent_id(agent, x_agent_id)))

    @router.get("/reports", response_class=HTMLResponse, include_in_schema=False)
    def reports(request: Request):
        if (refused := guard(request)) is not None:
            return refused
        found = months(path) if path.exists() else []
        items = "".join(f"<li><a href='/reports/{m}'>{m[:4]}年{int(m[5:])}月</a> "
                        f"<span class='muted'>{n:,} 次检索</span></li>" for m, n in found)
        body = f"<ul>{items}</ul>" if found else "<p>还没有检索记录。</p>"
        return PAGE.format(title="95598 知识库服务诊断月报", body=body)

    @router.get("/reports/{month}", response_class=HTMLResponse, include_in_schema=False)
    def report(month: Annotated[str, PathParam(pattern=MONTH)], request: Request):
        if (refused := guard(request)) is not None:
            return refused
        signature = month_signature(path, month) if path.exists() else (0,)
        if not signature[0]:
            body = f"<p>{escape(month)} 没有检索记录。<a href='/reports'>返回月报列表</a></p>"
            return HTMLResponse(PAGE.format(title="没有这个月的记录", body=body), 404)
        if month not in cache or cache[month][0] != signature:
            built = build_report(path, month, kb.articles(), kb.embedder, settings.timezone)
            cache[month] = (signature, render_html(built))
        return cache[month][1]

    return router
