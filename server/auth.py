"""Bearer tokens: editors' for writes (KB_EDITOR_TOKENS) and, when configured, agents' for
search and reading (KB_AGENT_TOKENS).

A sent token is compared with every configured one by hmac.compare_digest, so the time an answer
takes tells nothing about how much of a token was right. Tokens are never logged or echoed.

The checks are async: they do no I/O, and FastAPI runs a plain function dependency in a worker
thread, a hand-off that cost about 0.3 ms of every search."""

import hmac
from typing import Annotated

from fastapi import Header, HTTPException

from kb.config import Settings

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


def require_reader(settings: Settings):
    """A dependency for search and reading: nothing to check unless KB_AGENT_TOKENS is set;
    then 401 without a bearer token and 403 with one that is neither an agent's nor an
    editor's (editors read what they edit)."""
    agents = settings.agent_token_list()
    expected = [t.encode() for t in agents + settings.editor_token_list()]

    async def check(authorization: Authorization = None) -> None:
        if not agents:
            return
        token = bearer(authorization)
        if token is None:
            raise HTTPException(401, "agent token missing: send 'Authorization: Bearer <token>' "
                                     "(the agents' page takes it once as /?token=<token>)",
                                headers={"WWW-Authenticate": "Bearer"})
        if not accepted(token, expected):
            raise HTTPException(403, "token not accepted: ask whoever runs the server for the "
                                     "agents' token (KB_AGENT_TOKENS)")

    return check
