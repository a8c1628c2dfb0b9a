"""The agents' page in Debian's headless Chromium when the server requires an agents' token
(KB_AGENT_TOKENS): the token comes once in the address, is kept for the tab and sent as a header;
without it the page says what to do."""


import pytest
from browsing import open_page, serving_fixtures
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

TOKEN = "browser-agent-token"

expect.set_options(timeout=15_000)  # a margin for a loaded machine, not an expectation


@pytest.fixture(scope="module")
def base_url(tmp_path_factory, e5):
    """The real app with an agents' token, on a free 127.0.0.1 port in a background thread."""
    root = tmp_path_factory.mktemp("agent-browser")
    with serving_fixtures(root, e5, agent_tokens=TOKEN) as (url, _, _):
        yield url


@pytest.fixture
def page(browser, base_url):
    with open_page(browser, base_url) as page:
        yield page


def search(page, query: str) -> None:
    page.locator("#q").fill(query)
    expect(page.get_by_test_id("results")).to_have_attribute("data-query", query)


def test_a_token_in_the_address_is_kept_for_the_tab_and_taken_out_of_the_address(page):
    page.goto("/?token=" + TOKEN + "&agent=A007")
    assert "token" not in page.url and "agent=A007" in page.url
    expect(page.get_by_test_id("category")).to_contain_text("故障报修")  # categories loaded
    search(page, "家里突然没电了")
    expect(page.get_by_test_id("answer-title")).to_have_text("家中停电如何报修")
    with page.expect_response("**/api/feedback*") as sent:  # ?agent=A007
        page.get_by_test_id("feedback-useful").click()
    assert sent.value.status == 200
    expect(page.get_by_test_id("feedback-done")).to_have_text("已记录：有用")

    page.goto("/")  # the same tab later: the token is still there
    search(page, "电费怎么交")
    expect(page.get_by_test_id("status")).not_to_have_class("status error")


def test_without_a_token_the_page_says_to_open_it_with_one(page):
    page.goto("/")
    status = page.get_by_test_id("status")
    expect(status).to_have_text("需要坐席令牌：请用管理员提供的带令牌的链接（…/?token=…）打开本页。")
    page.locator("#q").fill("家里突然没电了")
    expect(status).to_contain_text("需要坐席令牌")
    expect(page.locator("#results li")).to_have_count(0)


def test_a_wrong_token_says_to_ask_for_a_new_link(page):
    page.goto("/?token=not-the-token")
    page.locator("#q").fill("家里突然没电了")
    expect(page.get_by_test_id("status")).to_have_text("坐席令牌无效：请向管理员索取新的带令牌的链接。")


def test_a_token_entered_on_the_editor_page_works_on_the_agents_page_too(browser, base_url):
    # /editor keeps its token for the tab; the agents' page sends it when it has none of its own.
    with open_page(browser, base_url, "/editor") as page:
        page.get_by_test_id("token").fill(TOKEN)
        page.get_by_test_id("token-save").click()
        expect(page.get_by_test_id("article-list").locator("li")).to_have_count(6)
        page.goto("/")
        search(page, "家里突然没电了")
        expect(page.get_by_test_id("answer-title")).to_have_text("家中停电如何报修")
