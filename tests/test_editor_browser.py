"""The editors' page in Debian's headless Chromium against the real app served by uvicorn:
edit an article, then find it by its new similar question in hit testing."""

from pathlib import Path

import pytest
from browsing import open_page, serving_fixtures
from playwright.sync_api import Page, expect

from indexer.search import RankParams
from kb.article import load_file

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"
TOKEN = "browser-editor-token"

# A write reindexes before it answers; the margin is for a loaded CI machine.
expect.set_options(timeout=30_000)


@pytest.fixture
def server(tmp_path, e5):
    """The real app, with an editor token, on a free 127.0.0.1 port in a background thread.
    Per test: each one edits the content."""
    with serving_fixtures(tmp_path, e5, editor_tokens=TOKEN) as (url, kb, _):
        yield url, kb


@pytest.fixture
def page(browser, server):
    base_url, _ = server
    with open_page(browser, base_url, "/editor", viewport={"width": 1366, "height": 900}) as page:
        yield page


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def enter_token(page: Page, token: str = TOKEN) -> None:
    page.get_by_test_id("token").fill(token)
    page.get_by_test_id("token-save").click()
    expect(page.get_by_test_id("token-state")).to_contain_text("已设置")


def open_article(page: Page, article_id: str, filter_text: str) -> None:
    page.get_by_test_id("filter-text").fill(filter_text)
    page.locator(f'#list button[data-id="{article_id}"]').click()
    expect(page.get_by_test_id("editing")).to_contain_text(article_id)


def hit_test(page: Page, query: str) -> None:
    page.get_by_test_id("tab-hit").click()
    page.get_by_test_id("hit-q").fill(query)
    page.get_by_test_id("hit-run").click()


def test_edit_an_article_then_find_it_by_its_new_similar_question(page, server):
    _, kb = server
    question = "楼道的灯和家里的灯一下子全灭了"
    enter_token(page)
    page.get_by_test_id("filter-category").select_option("故障报修")
    expect(page.locator("#list button")).to_have_count(2)
    open_article(page, "repair-home-outage", "停电")
    expect(page.get_by_test_id("preview")).to_contain_text("请您先看一下家里的总开关")
    similar = page.get_by_test_id("f-similar")
    similar.fill(similar.input_value() + "\n" + question)
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("form-message")).to_contain_text("已保存到 repair/repair-home-outage.md")
    expect(page.get_by_test_id("saved-tests")).to_be_hidden()  # none saved: nothing to say
    assert question in load_file(kb.content_dir / "repair" / "repair-home-outage.md").similar
    screenshot(page, "editor-edit-1366.png")

    hit_test(page, question)
    first = page.locator("#hit-rows tr").first
    expect(first).to_have_attribute("data-id", "repair-home-outage")
    expect(first.locator("td.matched")).to_have_text(f"相似问法：{question}")
    expect(first.locator("td.yes")).to_have_text("是")
    threshold = RankParams().confident_at
    expect(page.get_by_test_id("hit-summary")).to_contain_text(f"达到置信阈值 {threshold}")
    screenshot(page, "editor-hittest-1366.png")


def test_a_miss_becomes_a_similar_question_in_one_step(page, server):
    _, kb = server
    query = "线路老化了能不能来人看看"
    enter_token(page)
    hit_test(page, query)
    expect(page.locator("#hit-rows tr").first).to_be_visible()
    page.get_by_test_id("hit-target").fill("repair-arrival-time")
    page.get_by_test_id("hit-add").click()
    expect(page.get_by_test_id("hit-message")).to_contain_text("已把「线路老化了能不能来人看看」加为 repair-arrival-time")
    first = page.locator("#hit-rows tr").first
    expect(first).to_have_attribute("data-id", "repair-arrival-time")
    expect(first).to_have_class("target")
    page.get_by_test_id("hit-save").click()
    expect(page.get_by_test_id("hit-message")).to_contain_text("已存入评测集 _eval/saved.jsonl")
    assert query in (kb.content_dir / "_eval" / "saved.jsonl").read_text("utf-8")
    screenshot(page, "editor-hittest-fix-1366.png")


def test_an_edit_that_breaks_a_saved_hit_test_says_so_beside_the_save(page, server):
    _, kb = server
    saved = kb.content_dir / "_eval" / "saved.jsonl"
    saved.parent.mkdir()
    saved.write_text('{"query": "用手机交电费", "expected": ["pay-channels"]}\n', "utf-8")
    enter_token(page)
    open_article(page, "pay-channels", "缴纳")
    page.get_by_test_id("f-tags").fill("缴费，网上国网，手机")
    page.get_by_test_id("save").click()
    checks = page.get_by_test_id("saved-tests")
    expect(checks).to_have_text("已保存的命中测试 1 条全部仍把应命中文章排第一。")
    expect(checks).to_have_class("message ok")

    page.get_by_test_id("f-title").fill("电费发票怎么开具")
    page.get_by_test_id("f-similar").fill("怎么开电费发票")
    page.get_by_test_id("f-answer").fill("您好，电费发票可以在营业厅申请开具。")
    page.get_by_test_id("save").click()
    expect(checks).to_contain_text("1 条已保存的命中测试不再把应命中文章排第一")
    expect(checks).to_have_class("message warn")
    expect(checks.locator('li[data-query="用手机交电费"]')).to_contain_text(
        "「用手机交电费」应命中 「电费发票怎么开具」（pay-channels），现排第一的是「")
    screenshot(page, "editor-saved-tests-1366.png")
    page.get_by_test_id("new-article").click()
    expect(checks).to_be_hidden()


def test_a_bad_edit_shows_its_message_beside_the_field(page):
    enter_token(page)
    open_article(page, "pay-channels", "缴纳")
    expect(page.get_by_test_id("preview")).to_contain_text("网上国网APP")
    page.get_by_test_id("f-similar").fill("家里没电了怎么办")
    page.get_by_test_id("save").click()
    error = page.locator('[data-error-for="similar"]')
    expect(error).to_have_text("「家里没电了怎么办」已是 repair-home-outage（家中停电如何报修）的相似问法："
                               "一个问题只能对应一篇文章，请从这里或那篇中删去。")
    expect(page.get_by_test_id("f-similar")).to_have_class("invalid")
    expect(page.get_by_test_id("form-message")).to_have_text("有字段未通过检查，请按提示修改。")
    screenshot(page, "editor-invalid-1366.png")


def test_the_messages_beside_the_fields_are_in_chinese(page):
    enter_token(page)
    page.get_by_test_id("new-article").click()
    for name, value in (("f-id", "Bad_ID"), ("f-title", "电表箱门坏了找谁修"),
                        ("f-category", "故障报修"), ("f-answer", "您好，我为您登记报修。"),
                        ("f-related", "no-such-article")):
        page.get_by_test_id(name).fill(value)
    page.get_by_test_id("save").click()
    expect(page.locator('[data-error-for="id"]')).to_have_text(
        "编号「Bad_ID」只能由小写字母、数字和 - 组成，如 repair-home-outage。")
    page.get_by_test_id("f-id").fill("meter-box-door")
    page.get_by_test_id("f-effective-to").fill("2020-01-01")
    page.get_by_test_id("save").click()
    expect(page.locator('[data-error-for="related"]')).to_have_text(
        "「no-such-article」不是已有文章的编号。")
    expect(page.locator('[data-error-for="effective_to"]')).to_have_text(
        "失效日期 2020-01-01 已过，文章一保存就会失效：请选更晚的日期，或删除这篇文章。")
    expect(page.locator('[data-error-for="id"]')).to_have_text("")
    page.get_by_test_id("f-title").fill("x" * 201)
    page.get_by_test_id("save").click()
    expect(page.locator('[data-error-for="title"]')).to_have_text("太长了：最多 200 个字。")


def test_without_the_token_saving_says_to_enter_it(page):
    open_article(page, "pay-channels", "缴纳")
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("form-message")).to_contain_text("需要编辑令牌")
