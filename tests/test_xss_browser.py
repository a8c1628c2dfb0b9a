"""A hostile article in Debian's headless Chromium: the agents' page and the editors' page
(list, edit form, preview, hit testing) show it without running any of its script.

Every payload would set window.__xss or open a dialog if it ran, so the test looks for the
effect, not for markup; it also looks for what could run later (a javascript: link, an event
handler attribute, a frame). HashEmbedder: the article is found by its words, and this is not
about ranking."""


import pytest
from browsing import serving_fixtures
from playwright.sync_api import Page, expect

from indexer.embedders import HashEmbedder
from kb.article import Article, dump_article

pytestmark = pytest.mark.browser

TOKEN = "xss-editor-token"
expect.set_options(timeout=15_000)

PAYLOADS = "\n".join([
    "<script>window.__xss = 'script'</script>",
    "<img src=x onerror=\"window.__xss = 'img onerror'\">",
    "<svg onload=\"window.__xss = 'svg onload'\"><circle r=1 /></svg>",
    "<iframe srcdoc=\"<script>parent.__xss = 'iframe srcdoc'</script>\"></iframe>",
    "<iframe src=\"javascript:parent.__xss = 'iframe src'\"></iframe>",
    "[点这里](javascript:window.__xss='markdown link')",
    "<a href=\"javascript:window.__xss = 'a href'\">链接</a>",
    "<a href=\"JaVaScRiPt:alert('mixed case')\">大小写链接</a>",
    "<a href=\"jav&#x09;ascript:alert('entity')\">实体链接</a>",
    "<details open ontoggle=\"window.__xss = 'details'\"><summary>x</summary></details>",
    "<math><mtext><table><mglyph><style><img src=x onerror=\"window.__xss = 'mxss'\">",
    "<noscript><p title=\"</noscript><img src=x onerror=window.__xss='noscript'>\">",
    "<object data=\"javascript:alert('object')\"></object>",
    "<form><button formaction=\"javascript:alert('form')\">提交</button></form>",
])
TITLE = "恶意标记测试<img src=x onerror=\"window.__xss='title'\">停电赔偿"
SIMILAR = "<script>alert('similar')</script>恶意相似问法"
HOSTILE = Article(
    id="hostile-xss", title=TITLE, category="故障报修", similar=(SIMILAR,),
    answer=f"您好，这是恶意标记测试的答复。\n\n{PAYLOADS}",
    basis=f"恶意依据第一条。\n\n{PAYLOADS}",
)

# What could still run after the page settled: handlers, script URLs, frames, foreign scripts.
DANGER = """() => {
  const bad = [];
  for (const node of document.querySelectorAll("*")) {
    for (const a of node.attributes) {
      const v = a.value.replace(/[\\u0000-\\u0020]/g, "").toLowerCase();
      if (a.name.startsWith("on")) bad.push(`${node.tagName} ${a.name}`);
      const favicon = node.tagName === "LINK" && v === "data:,";  // the pages' own: no icon
      if (/^(javascript|vbscript|data):/.test(v) && !favicon) {
        bad.push(`${node.tagName} ${a.name}=${a.value}`);
      }
      if (a.name === "srcdoc") bad.push(`${node.tagName} srcdoc`);
    }
  }
  for (const tag of ["iframe", "object", "embed", "frame"]) {
    if (document.querySelector(tag)) bad.push(tag);
  }
  for (const s of document.scripts) {
    if (!s.src.startsWith(location.origin + "/static/")) bad.push(`script ${s.src || s.text}`);
  }
  return bad;
}"""


@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    root = tmp_path_factory.mktemp("xss")
    hostile = {"repair/hostile-xss.md": dump_article(HOSTILE)}
    with serving_fixtures(root, HashEmbedder(), hostile, editor_tokens=TOKEN) as (url, kb, _):
        assert kb.get("hostile-xss")["title"] == TITLE
        yield url


@pytest.fixture
def page(browser, base_url):
    """A page that records dialogs; the test fails if the payload's flag is set."""
    context = browser.new_context(base_url=base_url, viewport={"width": 1366, "height": 900},
                                  locale="zh-CN")
    page = context.new_page()
    page.dialogs = []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    yield page
    context.close()


def assert_nothing_ran(page: Page) -> None:
    page.wait_for_timeout(300)  # let a failed image load fire its onerror, had it one
    assert page.evaluate("() => window.__xss") is None
    assert page.dialogs == []
    assert page.evaluate(DANGER) == []


def click_every_link(page: Page, scope: str) -> None:
    """Activate each link that leads nowhere else (hidden ones too, as a keyboard could): a
    surviving javascript: href would run."""
    for link in page.locator(f"{scope} a").all():
        href = link.get_attribute("href") or ""
        if not href.startswith(("http://", "https://", "/")):
            link.evaluate("a => a.click()")


def test_the_agents_page_shows_the_hostile_article_as_text(page):
    page.goto("/")
    page.locator("#q").fill("恶意标记测试停电赔偿")
    first = page.get_by_test_id("result").first
    expect(first).to_have_attribute("data-id", "hostile-xss")
    first.click()  # opened by choosing it: whether the stand-in model is confident is not the point
    expect(page.get_by_test_id("answer-script")).to_contain_text("这是恶意标记测试的答复")
    assert_nothing_ran(page)
    expect(first.locator(".result-title")).to_contain_text("<img src=x onerror=")
    expect(page.get_by_test_id("answer-title")).to_contain_text("恶意标记测试<img")
    expect(page.locator("#basis")).to_contain_text("恶意依据第一条")
    click_every_link(page, "#article")
    assert_nothing_ran(page)

    page.locator("#q").fill("恶意相似问法")  # matched on the hostile similar question
    expect(page.get_by_test_id("matched").first).to_contain_text("<script>alert('similar')")
    page.locator("#q").fill("<img src=x onerror=alert('query')>停电")  # a pasted query
    expect(page.get_by_test_id("results")).to_have_attribute(
        "data-query", "<img src=x onerror=alert('query')>停电")
    assert_nothing_ran(page)


def test_the_editors_page_shows_the_hostile_article_as_text(page):
    page.goto("/editor")
    page.get_by_test_id("token").fill(TOKEN)
    page.get_by_test_id("token-save").click()
    page.get_by_test_id("filter-text").fill("恶意")
    item = page.locator('#list button[data-id="hostile-xss"]')
    expect(item).to_be_visible()
    assert_nothing_ran(page)
    expect(item).to_contain_text("恶意标记测试<img")
    item.click()
    expect(page.get_by_test_id("editing")).to_contain_text("hostile-xss")
    expect(page.get_by_test_id("f-title")).to_have_value(TITLE)
    expect(page.get_by_test_id("f-similar")).to_have_value(SIMILAR)
    expect(page.get_by_test_id("preview")).to_contain_text("这是恶意标记测试的答复")
    assert_nothing_ran(page)
    click_every_link(page, "[data-testid=preview]")
    assert_nothing_ran(page)

    page.get_by_test_id("tab-hit").click()
    page.get_by_test_id("hit-q").fill("恶意标记测试停电赔偿")
    page.get_by_test_id("hit-run").click()
    first = page.locator("#hit-rows tr").first
    expect(first).to_have_attribute("data-id", "hostile-xss")
    expect(first).to_contain_text("恶意标记测试<img src=x onerror=")
    assert_nothing_ran(page)
