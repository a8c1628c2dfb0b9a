"""What the HTTP edge refuses, and how: a cap on request bodies (plain ASGI middleware), and
a 422 that can always be written out.

No route takes more than an article (well under 1 MiB), but FastAPI reads a body whole before it
validates anything, so without a cap one request could make the server hold any amount of
memory. The cap is checked twice: against Content-Length before anything is read, and against
the bytes actually received, because a chunked body declares no length."""

import json
import math

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


class BodyLimit:
    """Answer 413 to a request whose body is over max_bytes; pass the others on unchanged."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send, f"{declared:,} bytes")
            return
        # Read the body before the app runs: a refusal is then a clean 413, never a request
        # half handled. Routes buffer bodies anyway, so this holds no more than they would.
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([], message, receive), send)
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await self._refuse(send, f"over {self.max_bytes:,} bytes")
                return
            if not message.get("more_body", False):
                break
        body = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([body], None, receive), send)

    async def _refuse(self, send, size: str) -> None:
        detail = (f"the request body is {size}; the limit is {self.max_bytes:,} bytes "
                  "(KB_MAX_BODY_BYTES): send one article at a time")
        payload = json.dumps({"detail": detail}, ensure_ascii=False).encode("utf-8")
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            (b"connection", b"close"),  # the rest of the body is unread: start afresh
        ]})
        await send({"type": "http.response.body", "body": payload})


def _content_length(scope: dict) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the HTTP server refuses a malformed length before we run
    return None


def _replay(messages: list[dict], last: dict | None, receive):
    """A receive() that gives the buffered messages, then `last`, then the real receive's."""
    pending = [*messages, *([last] if last else [])]

    async def replayed() -> dict:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422, echoing the input only as far as JSON can carry it. Python's JSON reader
    takes 1e999 and NaN, which JSON cannot write, and nesting 900 deep, which the encoder's
    recursion cannot; echoed whole, either turned a 422 into a 500."""
    errors = [e | {"input": _shown(e["input"])} if "input" in e else e for e in exc.errors()]
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


def _shown(value, depth: int = 3):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "inf", "nan"
    if isinstance(value, dict | list) and depth == 0:
        return "…"  # deeper than any field of ours
    if isinstance(value, dict):
        return {str(k): _shown(v, depth - 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_shown(v, depth - 1) for v in value]
    return value
