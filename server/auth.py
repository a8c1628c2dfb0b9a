"""Bearer tokens: editors' for writes (KB_EDITOR_TOKENS) and, when configured, agents' for
search and reading (KB_AGENT_TOKENS), the /reports pages included.

A sent token is compared with every configured one by hmac.compare_digest, so the time an answer
takes tells nothing about how much of a token was right. Tokens are never logged or echoed.

The API's checks are async: they do no I/O, and FastAPI runs a plain function dependency in a
worker thread, a hand-off that cost about 0.3 ms of every search.

A token in an address (the pages take one once as ?token=) would otherwise reach uvicorn's
access log, which prints every request's path and query: `redact_access_log` blanks it."""

import hmac
import logging
import re
from typing import Annotated
from urllib.parse import quote, unquote_plus

from fastapi import Header, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from kb.config import Settings
from kb.masking import mask

NO_TOKENS = ("editing is off: no editor tokens are configured. Set KB_EDITOR_TOKENS "
             "(comma-separated) or KB_EDITOR_TOKENS_FILE (one token a line) and restart")
Authorization = Annotated[str | None, Header()]


def bearer(authorization: str | None) -> str | None:
    """The token of an 'Authorization: Bearer <token>' header; None for none or another scheme."""
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def accepted(token: str, expected: list[bytes]) -> bool:
    """Whether `token` is one of `expected`; every one is compared, in constant time."""
    sent = token.encode()
    return sum(hmac.compare_digest(sent, t) for t in expected) > 0


def require_editor(tokens: list[str]):
    """A dependency: 401 without a bearer token, 403 with a wrong one (or none configured)."""
    expected = [t.encode() for t in tokens]

    async def check(authorization: Authorization = None) -> None:
        if not expected:
            raise HTTPException(403, NO_TOKENS)
        token = bearer(authorization)
        if token is None:
            raise HTTPException(401, "editor token missing: send 'Authorization: Bearer <token>'",
                                headers={"WWW-Authenticate": "Bearer"})
        if not accepted(token, expected):
            raise HTTPException(403, "editor token not accepted: check it with whoever runs "
                                     "the server (KB_EDITOR_TOKENS)")

    return check


def reader_check(settings: Settings):
    """Whether an Authorization header may search and read: always, unless KB_AGENT_TOKENS is
    set; then only with an agent's or an editor's bearer token (editors read what they edit)."""
    agents = settings.agent_token_list()
    expected = [t.encode() for t in agents + settings.editor_token_list()]

    def allows(authorization: str | None) -> bool:
        if not agents:
            return True
        token = bearer(authorization)
        return token is not None and accepted(token, expected)

    return allows


def require_reader(settings: Settings):
    """A dependency for search and reading (reader_check): 401 without a bearer token and 403
    with one that is not accepted."""
    allows = reader_check(settings)

    async def check(authorization: Authorization = None) -> None:
        if allows(authorization):
            return
        if bearer(authorization) is None:
            raise HTTPException(401, "agent token missing: send 'Authorization: Bearer <token>' "
                                     "(the agents' page takes it once as /?token=<token>)",
                                headers={"WWW-Authenticate": "Bearer"})
        raise HTTPException(403, "token not accepted: ask whoever runs the server for the "
                                 "agents' token (KB_AGENT_TOKENS)")

    return check


PAGE_COOKIE = "kb_token"
PAGE_COOKIE_SECONDS = 12 * 3600  # a shift


def page_guard(settings: Settings):
    """For pages the server renders (/reports), which a browser opens by address and so cannot
    send a header: nothing to check unless KB_AGENT_TOKENS is set; then the token comes as the
    bearer header, or once as ?token=, answered by a redirect to the address without it and a
    cookie for the pages' path. Returns None to go on, or the response to send instead."""
    agents = settings.agent_token_list()
    expected = [t.encode() for t in agents + settings.editor_token_list()]

    def check(request: Request, path: str = "/reports") -> Response | None:
        if not agents:
            return None
        given = request.query_params.get("token")
        if given is not None:
            if not accepted(given, expected):
                return _refused(403, "令牌不正确：请向系统管理员确认坐席令牌（KB_AGENT_TOKENS）。")
            left = request.url.remove_query_params("token")
            redirect = RedirectResponse(left.path + (f"?{left.query}" if left.query else ""), 303)
            # Lax, not Strict: a link from the portal or a chat opens the page from another site,
            # and a Strict cookie would be held back on the redirect's very next request.
            redirect.set_cookie(PAGE_COOKIE, given, max_age=PAGE_COOKIE_SECONDS, path=path,
                                httponly=True, samesite="lax",
                                secure=request.url.scheme == "https")
            return redirect
        token = bearer(request.headers.get("authorization")) or request.cookies.get(PAGE_COOKIE)
        if token is None:
            return _refused(401, f"需要令牌：请用 {path}?token=&lt;坐席令牌&gt; 打开本页，"
                                 "令牌随后保存在本浏览器中（12 小时）。")
        if not accepted(token, expected):
            return _refused(403, "令牌不正确：请向系统管理员确认坐席令牌（KB_AGENT_TOKENS）。")
        return None

    return check


def _refused(status: int, message: str) -> Response:  # message: fixed text, already HTML
    page = ("<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>"
            f"<title>需要令牌</title></head><body><p>{message}</p></body></html>")
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return Response(page, status, headers=headers, media_type="text/html")


_TOKEN_IN_QUERY = re.compile(r"([?&]token=)[^&\s\"]*")
# What callers say: the page searches as the agent types, so a phone number read out reaches
# the access log once per keystroke unless it is masked here as the query log masks it.
_TEXT_IN_QUERY = re.compile(r"([?&](?:q|comment)=)([^&\s\"]*)")


def _masked(found: re.Match) -> str:
    return found.group(1) + quote(mask(unquote_plus(found.group(2))), safe="")


class _RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _TEXT_IN_QUERY.sub(_masked, _TOKEN_IN_QUERY.sub(r"\1***", a))
                if isinstance(a, str) else a for a in record.args)
        return True


def redact_access_log() -> None:
    """Blank ?token= values and mask personal numbers in ?q= and ?comment= in uvicorn's
    access log (once per process)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _RedactTokens) for f in access.filters):
        access.addFilter(_RedactTokens())
