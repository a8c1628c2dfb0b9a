"""The agents' page's 有用/没用 block and its opened/copied events (server/static/feedback.js), in
Debian's headless Chromium against the real app, checked in the real query-log file."""

import sqlite3
import time
from pathlib import Path

import pytest
from browsing import open_page, serving_fixtures
from playwright.sync_api import Page, expect

from kb.querylog import LOG_FILE

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"
expect.set_options(timeout=15_000)


@pytest.fixture(scope="module")
def served(tmp_path_factory, e5):
    """The real app on a free port; yields (base url, app)."""
    root = tmp_path_factory.mktemp("feedback")
    with serving_fixtures(root, e5) as (url, _, app):
        yield url, app


@pytest.fixture
def page(browser, served):
    base_url, _ = served
    with open_page(browser, base_url, "/?agent=A042",
                   permissions=["clipboard-read", "clipboard-write"]) as page:
        yield page


def logged(served, sql, expected, timeout=10.0):
    """Wait until `sql` on the log file returns `expected` (the page posts, the writer writes)."""
    _, app = served
    deadline = time.monotonic() + timeout
    while True:
        app.state.querylog.flush()
        db = sqlite3.connect(app.state.kb.data_dir / LOG_FILE)
        try:
            got = db.execute(sql).fetchall()
        finally:
            db.close()
        if got == expected or time.monotonic() > deadline:
            assert got == expected
            return
        time.sleep(0.1)


def search(page: Page, query: str) -> str:
    page.locator("#q").fill(query)
    expect(page.get_by_test_id("results")).to_have_attribute("data-query", query)
    return page.get_by_test_id("results").get_attribute("data-query-id")


def test_useful_and_not_useful_with_a_comment_reach_the_log(page, served):
    qid = search(page, "家里突然没电了")
    box = page.get_by_test_id("feedback")
    expect(box).to_be_visible()
    page.get_by_test_id("feedback-useful").click()
    expect(page.get_by_test_id("feedback-done")).to_have_text("已记录：有用")
    logged(served, f"SELECT article_id, useful, agent FROM feedback WHERE query_id = '{qid}'",
           [("repair-home-outage", 1, "A042")])

    page.get_by_test_id("feedback-useless").click()
    expect(page.get_by_test_id("feedback-useless")).to_have_attribute("aria-pressed", "true")
    page.get_by_test_id("feedback-comment").fill("客户说13812345678这个号也停电了")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "feedback-1366x768.png"))
    page.get_by_test_id("feedback-send").click()
    expect(page.get_by_test_id("feedback-done")).to_have_text("已记录说明，谢谢")
    logged(served, f"SELECT useful, comment FROM feedback WHERE query_id = '{qid}' ORDER BY ts",
           [(1, None), (0, None), (0, "客户说[手机号]这个号也停电了")])


def test_the_search_is_logged_with_the_agent_from_the_page_address(page, served):
    qid = search(page, "交了钱怎么还不来电")
    logged(served, f"SELECT query, agent FROM searches WHERE query_id = '{qid}'",
           [("交了钱怎么还不来电", "A042")])


def test_choosing_and_copying_an_answer_are_events(page, served):
    qid = search(page, "电费")
    page.get_by_test_id("result").nth(1).click()
    chosen = page.get_by_test_id("result").nth(1).get_attribute("data-id")
    page.get_by_test_id("copy").click()
    expect(page.get_by_test_id("copied")).to_have_text("已复制")
    logged(served, f"SELECT article_id, kind, agent FROM events WHERE query_id = '{qid}' "
           "ORDER BY ts", [(chosen, "opened", "A042"), (chosen, "copied", "A042")])


def test_an_answer_shown_by_itself_is_not_an_opened_event(page, served):
    qid = search(page, "家里突然没电了")
    expect(page.get_by_test_id("article")).to_be_visible()
    page.wait_for_timeout(1000)  # longer than the page waits before it counts a choice
    logged(served, f"SELECT count(*) FROM events WHERE query_id = '{qid}'", [(0,)])


def test_the_block_resets_for_the_next_search(page):
    search(page, "家里突然没电了")
    page.get_by_test_id("feedback-useful").click()
    expect(page.get_by_test_id("feedback-done")).to_have_text("已记录：有用")
    search(page, "电费为什么这么高")
    expect(page.get_by_test_id("feedback-done")).to_have_text("")
    expect(page.get_by_test_id("feedback-useful")).to_have_attribute("aria-pressed", "false")


def test_a_chinese_agent_id_reaches_the_log(browser, served):
    """A header value must be Latin-1 (fetch throws on 张三): the page sends the id another way."""
    base_url, _ = served
    with open_page(browser, base_url, "/?agent=张三") as page:
        qid = search(page, "家里突然没电了")
        page.get_by_test_id("feedback-useful").click()
        expect(page.get_by_test_id("feedback-done")).to_have_text("已记录：有用")
        page.get_by_test_id("result").nth(1).click()
        page.get_by_test_id("copy").click()
        expect(page.get_by_test_id("copied")).to_have_text("已复制")
        logged(served, f"SELECT agent FROM searches WHERE query_id = '{qid}'", [("张三",)])
        logged(served, f"SELECT agent FROM feedback WHERE query_id = '{qid}'", [("张三",)])
        logged(served, f"SELECT kind, agent FROM events WHERE query_id = '{qid}' ORDER BY ts",
               [("opened", "张三"), ("copied", "张三")])


def test_an_agent_id_the_server_would_drop_is_not_kept_and_searching_works(browser, served):
    base_url, _ = served
    with open_page(browser, base_url, "/?agent=" + "A" * 65) as page:
        qid = search(page, "交了钱怎么还不来电")  # answered, not refused (422)
        expect(page.get_by_test_id("article")).to_be_visible()
        assert page.evaluate("localStorage.getItem('kb.agent')") is None
        assert page.evaluate("window.kbAgent") == ""
        logged(served, f"SELECT agent FROM searches WHERE query_id = '{qid}'", [(None,)])

        # One remembered before the page checked ids is dropped too, not sent from every tab.
        page.evaluate("localStorage.setItem('kb.agent', 'B'.repeat(65))")
        page.goto("/")
        assert page.evaluate("localStorage.getItem('kb.agent')") is None
        assert page.evaluate("window.kbAgent") == ""

        page.goto("/?agent=A043")  # a good one is remembered, and a bad one later leaves it be
        page.goto("/?agent=" + "A" * 65)
        assert page.evaluate("window.kbAgent") == "A043"
