"""The agents' page in Debian's headless Chromium against the real app served by uvicorn."""

import json
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from browsing import serving_fixtures
from playwright.sync_api import Page, expect

from kb.render import render_html

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"
WIDE = {"width": 1366, "height": 768}
NARROW = {"width": 390, "height": 844}

# The model answers in milliseconds; the margin is for a loaded CI machine, not an expectation.
expect.set_options(timeout=15_000)


@pytest.fixture(scope="module")
def base_url(tmp_path_factory, e5):
    """The real app on a free 127.0.0.1 port, in a background thread."""
    root = tmp_path_factory.mktemp("browser")
    with serving_fixtures(root, e5) as (url, _, _):
        yield url


def open_page(browser, base_url, viewport=WIDE, init_script=None):
    context = browser.new_context(
        base_url=base_url, viewport=viewport, locale="zh-CN",
        permissions=["clipboard-read", "clipboard-write"],
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: errors.append(f"dialog: {dialog.message}"))
    if init_script:
        page.add_init_script(init_script)
    page.goto("/")
    return page, errors


@pytest.fixture
def page(browser, base_url):
    page, errors = open_page(browser, base_url)
    yield page
    page.context.close()
    assert errors == []  # no script errors, no alert/confirm dialogs


def screenshot(page: Page, name: str, full_page: bool = False) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=full_page)


def results(page: Page):
    return page.get_by_test_id("result")


def wait_for_query(page: Page, query: str) -> None:
    """Until the page shows the answer to `query`."""
    expect(page.get_by_test_id("results")).to_have_attribute("data-query", query)


def changed_search(page: Page, change) -> None:
    """Searches get the real response, passed through change(body) first."""
    def handle(route):
        body = route.fetch().json()
        change(body)
        route.fulfill(json=body)

    page.route("**/api/search?*", handle)


def not_confident(body: dict) -> None:
    body["confident"] = False
    for r in body["results"]:
        r["confident"] = False


UNSURE = "未能确定唯一答案"


def test_search_box_has_focus_and_the_page_shows_a_hint(page):
    expect(page.locator("#q")).to_be_focused()
    expect(page.get_by_test_id("hint")).to_be_visible()
    expect(page.locator("#category option")).to_have_count(6)  # 全部分类 + 5 categories
    expect(page.locator("#category option").nth(3)).to_have_text("故障报修（2）")
    screenshot(page, "empty-1366x768.png")


def test_colloquial_question_shows_the_right_answer_first(page):
    page.keyboard.type("家里突然没电了")
    wait_for_query(page, "家里突然没电了")
    first = results(page).first
    expect(first).to_have_attribute("data-id", "repair-home-outage")
    expect(first).to_have_attribute("aria-selected", "true")
    expect(first.get_by_test_id("matched")).to_contain_text("家里没电了怎么办")
    expect(page.get_by_test_id("answer-title")).to_have_text("家中停电如何报修")
    script = page.get_by_test_id("answer-script")
    expect(script).to_contain_text("请您先看一下家里的总开关")
    expect(script.locator("mark").first).to_be_visible()
    marked = set(script.locator("mark").all_inner_texts())
    assert {"家里", "停电"} <= marked  # a query word, and 停电 as the synonym of 没电
    expect(page.get_by_test_id("no-answer")).to_be_hidden()
    expect(page.locator("#article-uncertain")).to_be_hidden()  # a confident answer looks it
    expect(page.locator("#article-warning")).to_be_hidden()
    screenshot(page, "search-1366x768.png")


def test_highlighting_keeps_the_script_text_intact(page):
    page.keyboard.type("家里突然没电了")
    wait_for_query(page, "家里突然没电了")
    script = page.get_by_test_id("answer-script")
    expect(script.locator("mark")).not_to_have_count(0)
    text = script.inner_text().strip()
    assert text.startswith("您好，请您先看一下家里的总开关") and text.endswith("详细地址。")
    assert script.locator("p").count() == 1  # marks were added inside, the HTML kept its shape


def test_arrow_keys_and_enter_work_without_a_mouse(page):
    page.keyboard.type("家里突然没电了")
    wait_for_query(page, "家里突然没电了")
    expect(results(page).first).to_have_attribute("aria-selected", "true")
    first_title = results(page).first.locator(".result-title").inner_text()
    second_title = results(page).nth(1).locator(".result-title").inner_text()
    page.keyboard.press("ArrowDown")
    expect(results(page).nth(1)).to_have_attribute("aria-selected", "true")
    expect(results(page).first).to_have_attribute("aria-selected", "false")
    expect(page.get_by_test_id("answer-title")).to_have_text(second_title)
    # Below a confident answer, the others are not it: said so, without the uncertain prompt.
    expect(page.get_by_test_id("article-warning")).to_have_text(
        "匹配度低：这不是可靠的标准答案，请核对后再答复。")
    page.keyboard.press("ArrowUp")
    expect(results(page).first).to_have_attribute("aria-selected", "true")
    expect(page.get_by_test_id("answer-title")).to_have_text(first_title)
    page.keyboard.press("ArrowUp")  # stays on the first: a confident list has no "none" row
    expect(results(page).first).to_have_attribute("aria-selected", "true")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("answer")).to_be_focused()
    expect(page.get_by_test_id("answer-title")).to_have_text(second_title)
    page.keyboard.press("Escape")
    expect(page.locator("#q")).to_be_focused()


def test_enter_pressed_before_the_answer_arrives_opens_the_new_answer(page):
    page.keyboard.type("电费咋这么贵")
    wait_for_query(page, "电费咋这么贵")
    page.locator("#q").fill("家里突然没电了")
    page.keyboard.press("Enter")  # within the debounce: the answer on screen is the old one
    expect(page.get_by_test_id("answer")).to_be_focused()
    wait_for_query(page, "家里突然没电了")
    expect(results(page).first).to_have_attribute("aria-selected", "true")
    expect(page.get_by_test_id("answer-title")).to_have_text("家中停电如何报修")


def test_copy_button_puts_the_script_on_the_clipboard(page):
    page.keyboard.type("家里突然没电了")
    wait_for_query(page, "家里突然没电了")
    expect(page.get_by_test_id("copy")).to_contain_text("Ctrl")  # the shortcut is shown
    page.get_by_test_id("copy").click()
    expect(page.get_by_test_id("copied")).to_have_text("已复制")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith("您好，请您先看一下家里的总开关")
    assert copied.endswith("请您留下联系电话和详细地址。")
    assert "<" not in copied and "依据" not in copied


@pytest.mark.parametrize("keys", ["Control+Enter", "Alt+KeyC"])
def test_copy_shortcut_from_the_search_box(page, keys):
    page.evaluate("navigator.clipboard.writeText('')")
    page.keyboard.type("电费咋这么贵")
    wait_for_query(page, "电费咋这么贵")
    expect(page.get_by_test_id("answer-title")).to_have_text("这个月电费为什么突然变高")
    page.keyboard.press(keys)
    expect(page.get_by_test_id("copied")).to_have_text("已复制")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith("您好，电费升高常见有三个原因")
    expect(page.locator("#q")).to_have_value("电费咋这么贵")  # the shortcut typed nothing


def test_unrelated_question_shows_its_top_candidate_with_a_prompt_to_check_it(page):
    """End to end: the real ranker must not be confident about a question off the subject,
    and the page then says to check the top candidate, not that there is no answer."""
    page.keyboard.type("明天天气怎么样")
    wait_for_query(page, "明天天气怎么样")
    expect(page.get_by_test_id("results")).to_have_attribute("data-confident", "false")
    expect(page.get_by_test_id("article")).to_be_visible()
    expect(page.get_by_test_id("article-warning")).to_contain_text(UNSURE)
    expect(page.get_by_test_id("no-answer")).to_be_hidden()
    expect(page.get_by_text("知识库中没有可靠的标准答案")).to_be_hidden()
    screenshot(page, "unrelated-1366x768.png")


def test_uncertain_response_shows_the_top_candidate_and_marks_every_one(page):
    """The page alone, whatever the calibration: a real response with `confident` forced off.
    Uncertain is not "no answer": the top candidate is mostly right, so it is shown, with a
    prompt to check it, and to hand over if no candidate fits."""
    changed_search(page, not_confident)
    page.keyboard.type("停电")
    wait_for_query(page, "停电")
    expect(page.get_by_test_id("no-answer")).to_be_hidden()
    expect(page.get_by_test_id("status")).to_contain_text(UNSURE)
    count = results(page).count()
    assert count > 1
    expect(page.locator("[data-testid=result] .badge.uncertain")).to_have_count(count)
    expect(results(page).first).to_have_attribute("aria-selected", "true")
    first_title = results(page).first.locator(".result-title").inner_text()
    expect(page.get_by_test_id("answer-title")).to_have_text(first_title)
    expect(page.locator("#article-uncertain")).to_be_visible()
    warning = page.get_by_test_id("article-warning")
    expect(warning).to_have_text("未能确定唯一答案：请先核对这条候选是否对应客户的问题，"
                                 "必要时看其他候选；都不对应时请转专席或记录工单。")
    screenshot(page, "candidate-1366x768.png")
    page.keyboard.press("ArrowDown")  # the other candidates, with the same prompt
    expect(results(page).nth(1)).to_have_attribute("aria-selected", "true")
    expect(warning).to_contain_text(UNSURE)
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")  # no "none of these" row above the first any more
    expect(results(page).first).to_have_attribute("aria-selected", "true")
    expect(page.get_by_test_id("answer-title")).to_have_text(first_title)
    page.keyboard.press("Control+Enter")  # the candidate on screen can be copied
    expect(page.get_by_test_id("copied")).to_have_text("已复制")


def test_no_candidate_at_all_shows_the_no_result_message(page):
    changed_search(page, lambda body: body.update(confident=False, results=[]))
    page.keyboard.type("停电")
    wait_for_query(page, "停电")
    no_answer = page.get_by_test_id("no-answer")
    expect(no_answer).to_be_visible()
    expect(no_answer).to_contain_text("知识库中没有可靠的标准答案")
    expect(no_answer).to_contain_text("没有找到任何候选。请换个说法，或清除分类筛选。")
    expect(page.get_by_test_id("article")).to_be_hidden()
    expect(page.get_by_test_id("status")).to_contain_text("没有找到相关条目")
    screenshot(page, "no-answer-1366x768.png")


def test_refused_queries_show_the_reason_quietly(page):
    page.keyboard.type("？？！")
    expect(page.get_by_test_id("status")).to_contain_text("只有标点或空格无法搜索")
    expect(page.get_by_test_id("status")).to_have_attribute("title", "the query is empty: type a "
                                                            "few words of the question")
    page.fill("#q", "停" * 201)
    expect(page.get_by_test_id("status")).to_contain_text("已输入 201 字，最多 200 字")
    expect(results(page)).to_have_count(0)
    page.fill("#q", "")
    expect(page.get_by_test_id("hint")).to_be_visible()
    expect(page.get_by_test_id("status")).to_have_text("")


@pytest.mark.parametrize("detail, said", [
    ([{"type": "string_too_long", "loc": ["query", "category"],
       "msg": "String should have at most 50 characters"}], "分类名称太长"),
    ([{"type": "missing", "loc": ["query", "q"], "msg": "Field required"}], "请输入问题的几个字"),
    ("something new the page has no words for", "这次搜索无法处理"),
], ids=["category", "q", "unknown"])
def test_a_refusal_is_said_in_chinese_with_the_english_kept_for_support(page, detail, said):
    page.route("**/api/search?*", lambda route: route.fulfill(status=422,
                                                              json={"detail": detail}))
    page.keyboard.type("停电")
    status = page.get_by_test_id("status")
    expect(status).to_contain_text(said)
    assert not any("a" <= c.lower() <= "z" for c in status.inner_text())
    as_json = json.dumps(detail, ensure_ascii=False, separators=(",", ":"))  # as JSON.stringify
    expect(status).to_have_attribute("title", detail if isinstance(detail, str) else as_json)


FAILURES = {
    "500": (lambda route: route.fulfill(status=500, body="Internal Server Error"),
            "搜索失败：服务器出错（HTTP 500）"),
    "503-no-index": (lambda route: route.fulfill(status=503, json={
        "detail": "no index in data/index: run `kb index`"}), "搜索暂不可用：索引未建立"),
    "network": (lambda route: route.abort("connectionrefused"), "搜索失败：无法连接服务器"),
}


@pytest.mark.parametrize("failure", FAILURES)
def test_a_failed_search_clears_the_previous_answer_and_copies_nothing(page, failure):
    """The answer on screen belongs to the question before: after a failed search it must be
    neither read out nor copied as the answer to the new one."""
    answer, said = FAILURES[failure]
    page.keyboard.type("家里突然没电了")
    wait_for_query(page, "家里突然没电了")
    expect(page.get_by_test_id("article")).to_be_visible()
    page.evaluate("navigator.clipboard.writeText('')")

    page.route("**/api/search?*", answer)
    page.locator("#q").fill("电费咋这么贵")
    status = page.get_by_test_id("status")
    expect(status).to_contain_text(said)
    expect(status).to_have_class("status error")
    assert "index" not in status.inner_text()  # the English detail is for the console
    expect(results(page)).to_have_count(0)
    expect(page.get_by_test_id("article")).to_be_hidden()
    expect(page.get_by_test_id("no-answer")).to_be_hidden()
    page.keyboard.press("Control+Enter")
    page.keyboard.press("Alt+KeyC")
    page.wait_for_timeout(300)  # a copy would have been written by now
    assert page.evaluate("navigator.clipboard.readText()") == ""
    expect(page.get_by_test_id("copied")).to_have_text("")

    page.unroute("**/api/search?*")  # the server is back: the next search works as before
    page.locator("#q").fill("电费咋这么贵 ")
    wait_for_query(page, "电费咋这么贵 ")
    page.keyboard.press("Control+Enter")
    expect(page.get_by_test_id("copied")).to_have_text("已复制")
    assert page.evaluate("navigator.clipboard.readText()").startswith("您好，电费升高")


LISTED = """您好，请您按下面的步骤检查：

1. 看一下家里的总开关
2. 看一下电表有没有显示
    - 电表黑屏：请告诉我户号
    - 电表正常：请看邻居家有没有电

如果还是没电：

- 请不要自己打开电表箱
- 请留好**联系电话**

| 渠道 | 时间 |
|---|---|
| 网上国网 | 全天 |
"""


def test_copying_keeps_the_numbers_of_an_ordered_list(page):
    """innerText drops the numbers the browser draws for <ol>: the copy must carry them."""
    def listed(body):
        body["results"][0]["answer_html"] = render_html(LISTED)  # as the server renders it

    changed_search(page, listed)
    page.keyboard.type("家里突然没电了")
    wait_for_query(page, "家里突然没电了")
    expect(page.get_by_test_id("answer-script").locator("mark")).not_to_have_count(0)
    page.keyboard.press("Control+Enter")
    expect(page.get_by_test_id("copied")).to_have_text("已复制")
    assert page.evaluate("navigator.clipboard.readText()") == (
        "您好，请您按下面的步骤检查：\n"
        "1. 看一下家里的总开关\n"
        "2. 看一下电表有没有显示\n"
        "   - 电表黑屏：请告诉我户号\n"
        "   - 电表正常：请看邻居家有没有电\n"
        "如果还是没电：\n"
        "- 请不要自己打开电表箱\n"
        "- 请留好联系电话\n"
        "渠道\t时间\n"
        "网上国网\t全天")


def test_category_filter_narrows_the_results(page):
    page.select_option("#category", "缴费渠道")
    page.locator("#q").fill("停电")
    wait_for_query(page, "停电")
    expect(results(page)).to_have_count(1)
    expect(results(page).first).to_have_attribute("data-id", "pay-channels")
    page.select_option("#category", "")
    expect(results(page)).to_have_count(6)


def test_related_article_opens_in_the_answer_pane(page):
    page.keyboard.type("家里突然没电了")
    wait_for_query(page, "家里突然没电了")
    related = page.get_by_test_id("related").get_by_role("button", name="报修后抢修人员多久能到")
    related.click()
    expect(page.get_by_test_id("answer-title")).to_have_text("报修后抢修人员多久能到")
    expect(page.get_by_test_id("answer-script")).to_contain_text("城区范围不超过45分钟")
    expect(page.locator("#article-source")).to_have_text("相关文章")
    page.keyboard.press("Control+Enter")
    expect(page.get_by_test_id("copied")).to_have_text("已复制")
    assert "45分钟" in page.evaluate("navigator.clipboard.readText()")


NO_ABORT = "AbortController.prototype.abort = function () {};"


@pytest.mark.parametrize("abort", [True, False], ids=["aborted", "late-answer-arrives"])
def test_late_answer_to_an_older_query_never_replaces_a_newer_one(browser, base_url, abort):
    """The first query's answer is held back until the second one is on screen. With the
    AbortController at work the old request is cancelled; without it (the init script makes
    abort() do nothing) the old answer does arrive, and the sequence number must drop it."""
    slow, fast = "电费咋这么贵", "家里突然没电了"
    page, errors = open_page(browser, base_url, init_script=None if abort else NO_ABORT)
    held = []

    def hold_slow(route):
        if parse_qs(urlparse(route.request.url).query)["q"] == [slow]:
            held.append(route)
        else:
            route.continue_()

    page.route("**/api/search?*", hold_slow)
    with page.expect_request(lambda r: "/api/search" in r.url):
        page.locator("#q").fill(slow)
    if abort:
        with page.expect_event("requestfailed", lambda r: "/api/search" in r.url):
            page.locator("#q").fill(fast)
    else:
        page.locator("#q").fill(fast)
    wait_for_query(page, fast)
    assert len(held) == 1  # the slow query did reach the route before the fast one

    if not abort:
        held[0].continue_()  # the real answer to the old query, now late
        page.wait_for_function("document.body.dataset.staleIgnored === '1'")
    wait_for_query(page, fast)
    expect(results(page).first).to_have_attribute("data-id", "repair-home-outage")
    expect(page.get_by_test_id("answer-title")).to_have_text("家中停电如何报修")
    expect(page.locator("#q")).to_have_value(fast)
    page.context.close()
    assert errors == []


def test_late_related_article_never_covers_a_newer_search(page):
    held = []
    page.route("**/api/articles/*", lambda route: held.append(route))
    page.keyboard.type("家里突然没电了")
    wait_for_query(page, "家里突然没电了")
    with page.expect_request("**/api/articles/repair-arrival-time"):
        page.get_by_test_id("related").get_by_role("button").first.click()
    page.locator("#q").fill("电费咋这么贵")
    wait_for_query(page, "电费咋这么贵")
    assert len(held) == 1
    held[0].continue_()  # the article the agent clicked before typing again, now late
    page.wait_for_function("document.body.dataset.staleIgnored === '1'")
    expect(page.get_by_test_id("answer-title")).to_have_text("这个月电费为什么突然变高")


def test_narrow_screen_stacks_the_list_above_the_answer(browser, base_url):
    page, errors = open_page(browser, base_url, viewport=NARROW)
    expect(page.locator("#q")).to_be_focused()
    page.keyboard.type("家里突然没电了")
    wait_for_query(page, "家里突然没电了")
    expect(page.get_by_test_id("answer-title")).to_have_text("家中停电如何报修")
    listing = page.locator(".list-pane").bounding_box()
    answer = page.get_by_test_id("answer").bounding_box()
    assert listing["y"] + listing["height"] <= answer["y"]
    assert listing["width"] <= NARROW["width"] and answer["width"] <= NARROW["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= NARROW["width"]
    font_px = page.get_by_test_id("answer-script").evaluate(
        "e => parseFloat(getComputedStyle(e).fontSize)")
    assert font_px >= 18  # read aloud from the screen
    screenshot(page, "search-390x844.png", full_page=True)
    page.context.close()
    assert errors == []
