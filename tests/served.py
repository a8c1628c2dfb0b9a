"""The real app under uvicorn in a thread, and raw HTTP to it, for the tests that try to break
it (tests/test_reliability.py, tests/test_security.py).

Requests go over raw sockets, so their bytes (invalid UTF-8, encoded slashes, a 100 KB line, a
chunked body) reach the server unchanged; an http library would tidy them first."""

import hashlib
import re
import socket
import threading
import time
from pathlib import Path

import uvicorn

from kb.config import Settings
from kb.knowledge_base import KnowledgeBase
from server.app import create_app
from server.tuning import UVICORN_OPTIONS


class Served:
    """The real app on a free port of 127.0.0.1. `settings` go to Settings, `options` to
    uvicorn.Config (say, log_config=None to keep the logs in pytest's capture)."""

    def __init__(self, kb: KnowledgeBase, options: dict | None = None, **settings):
        app = create_app(Settings(content_dir=kb.content_dir, data_dir=kb.data_dir, **settings),
                         kb)
        config = uvicorn.Config(app, host="127.0.0.1", port=0,  # as `kb serve` runs it
                                **(UVICORN_OPTIONS | {"log_level": "warning"} | (options or {})))
        self.app = app
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=15)


def exchange(port: int, data: bytes, timeout: float = 15) -> tuple[int, bytes, bytes]:
    """Send the bytes as they are and read until the server closes: (status, head, body). A
    hang fails the test through the socket timeout."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        received = b""
        while chunk := s.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head, body


def request_bytes(method: bytes, target: bytes, headers: dict[bytes, bytes] | None = None,
                  body: bytes = b"") -> bytes:
    """One HTTP/1.1 request, exactly as given; Content-Length is added unless given."""
    headers = headers or {}
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    lines += [name + b": " + value for name, value in headers.items()]
    if (body or method != b"GET") and b"Content-Length" not in headers:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def raw_request(port: int, method: bytes, target: bytes, headers: dict[bytes, bytes] | None = None,
                body: bytes = b"", timeout: float = 15, follow: bool = True) -> tuple[int, bytes]:
    """(status, body) of one request, its target sent as given. A redirect is followed once,
    with the same method and body, and must stay under the path it came from."""
    data = request_bytes(method, target, headers, body)
    status, head, answer = exchange(port, data, timeout)
    if status == 307 and follow:  # Starlette's trailing-slash redirect: an id ending in %2f
        location = re.search(rb"(?im)^location: *https?://[^/]+(/\S*)", head).group(1)
        assert location.startswith(target.split(b"%")[0].split(b"?")[0][:14]), location
        return raw_request(port, method, location, headers, body, timeout, follow=False)
    return status, answer


def raw_get(port: int, target: bytes, timeout: float = 15) -> tuple[int, bytes]:
    return raw_request(port, b"GET", target, timeout=timeout)


def folder_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()
