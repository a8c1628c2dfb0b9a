"""What the browser tests share: the real app served by uvicorn on a free 127.0.0.1 port in a
background thread, and Debian's headless Chromium (Playwright never downloads a browser here)."""

import shutil
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import sync_playwright

from kb.config import Settings
from kb.knowledge_base import KnowledgeBase
from server.app import create_app

CHROMIUM = Path("/usr/bin/chromium")
FIXTURES = Path(__file__).parent / "fixtures"


@contextmanager
def serving_fixtures(root: Path, embedder, extra: dict[str, str] | None = None, **settings):
    """A copy of the fixture content in root (plus `extra` files: relative path -> text),
    indexed and served; yields (base URL, KnowledgeBase, app)."""
    shutil.copytree(FIXTURES / "content", root / "content")
    for name, text in (extra or {}).items():
        (root / "content" / name).write_text(text, encoding="utf-8")
    kb = KnowledgeBase(root / "content", root / "data", embedder)
    report = kb.reindex()
    assert not report.errors, report.errors
    app = create_app(Settings(content_dir=kb.content_dir, data_dir=kb.data_dir, **settings), kb)
    with serving(app) as url:
        yield url, kb, app


@contextmanager
def serving(app):
    """Yields the base URL of the app, served until the block ends."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))  # the port is ours from here on: no race with other tests
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@contextmanager
def open_page(browser, base_url: str, path: str | None = None, **context_options):
    """A page of its own browser context (Chinese locale, 1366x768 unless `context_options` say
    otherwise), at `path` if given; the block fails if a script on the page threw."""
    context = browser.new_context(**({"base_url": base_url, "locale": "zh-CN",
                                      "viewport": {"width": 1366, "height": 768}}
                                     | context_options))
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    if path:
        page.goto(path)
    try:
        yield page
    finally:
        context.close()
    assert errors == []


@contextmanager
def chromium():
    """Yields a launched headless Chromium, closed when the block ends."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (apt-get install chromium "
                    "fonts-wqy-microhei); Playwright never downloads a browser here")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield browser
        finally:
            browser.close()
