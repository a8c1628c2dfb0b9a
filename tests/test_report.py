"""The monthly report over a generated month of logs (tests/logsim.py): a subset of the real
content/ indexed with the real e5 model, every search through the real KnowledgeBase and
QueryLog, the report built from the real SQLite file and rendered to HTML and Markdown."""

import base64
import json
import re
import shutil
import sqlite3
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict, namedtuple
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import logsim
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from kb import themes
from kb.article import load_folder
from kb.cli import cli
from kb.config import Settings
from kb.knowledge_base import KnowledgeBase
from kb.masking import mask
from kb.querylog import LOG_FILE, LogSettings, QueryLog
from kb.report import (
    CATEGORY_TOPIC,
    OTHER,
    TOPICS,
    Search,
    _placed,
    build_report,
    typed_out,
)
from kb.report_render import render
from server.app import create_app

ROOT = Path(__file__).parent.parent
ARTIFACTS = ROOT / "test-artifacts"
MONTH, BEFORE = "2025-07", "2025-06"
# For the small hand-made logs, where no ranking is involved: the fields QueryLog reads.
FakeHit = namedtuple("FakeHit", "id score confident category")


@pytest.fixture(scope="module")
def month(tmp_path_factory, e5):
    """Two articles of every category of content/ (the rest are the gaps), two months of
    logs: June, and July with a storm and more outage calls."""
    root = tmp_path_factory.mktemp("report")
    articles, _ = load_folder(ROOT / "content")
    per_category: dict[str, list] = defaultdict(list)
    for a in sorted(articles, key=lambda a: a.id):
        per_category[a.category].append(a)
    (root / "content").mkdir()
    shutil.copytree(ROOT / "content" / "_dict", root / "content" / "_dict")
    for chosen in per_category.values():
        for a in chosen[:2]:
            shutil.copy(a.path, root / "content" / Path(a.path).name)
    kb = KnowledgeBase(root / "content", root / "data", e5)
    kb.reindex()
    path = root / "data" / LOG_FILE
    log = QueryLog(LogSettings(path))
    cache: dict = {}
    before = logsim.simulate_month(log, kb, BEFORE, per_day=60, season={"电价政策": 1.6},
                                   storm=False, searched=cache)
    now = logsim.simulate_month(log, kb, MONTH, per_day=60, searched=cache)
    log.close()
    report = build_report(path, MONTH, kb.articles(), kb.embedder)
    return {"kb": kb, "path": path, "before": before, "now": now, "report": report}


def all_rows(path, sql):
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


# Counts.

def test_searches_by_day_and_hour_are_what_was_logged(month):
    r, now = month["report"], month["now"]
    assert r.searches == sum(now.by_day.values()) > 1000
    assert dict(r.by_day) == {d: now.by_day.get(d, 0) for d, _ in r.by_day}
    assert len(r.by_day) == 31 and r.by_day[0][0] == "2025-07-01"
    assert r.by_hour == [now.by_hour.get(h, 0) for h in range(24)]


def test_half_typed_searches_count_once(month):
    now = month["now"]
    logged = all_rows(month["path"], "SELECT count(*) FROM searches WHERE at LIKE '2025-07%'")
    assert now.typed > 100
    assert logged == [(sum(now.by_day.values()) + now.typed,)]
    assert month["report"].searches == sum(now.by_day.values())


def test_the_storm_day_is_the_busiest_and_nights_are_quiet(month):
    r = month["report"]
    busiest = max(r.by_day, key=lambda dn: dn[1])
    assert busiest[0] == month["now"].storm_day.isoformat()
    assert max(r.by_hour[9:18]) > 5 * max(r.by_hour[0:5])


def test_every_content_category_has_a_diagnosis_topic():
    guide = (ROOT / "docs" / "content-guide.md").read_text(encoding="utf-8")
    listed = guide.split("## Categories", 1)[1].split("##", 1)[0]
    categories = {c.strip() for c in re.split(r"[,，\n]", listed) if c.strip()}
    assert len(categories) >= 15
    assert categories - set(CATEGORY_TOPIC) == {"安全用电"}  # falls under 其他, on purpose
    assert set(CATEGORY_TOPIC.values()) | {OTHER} == set(TOPICS)


def test_topics_add_up_and_change_on_last_month(month):
    r = month["report"]
    assert sum(t.total for t in r.topics) == r.searches
    assert sum(t.previous for t in r.topics) == r.previous_searches == sum(
        month["before"].by_day.values())
    outage = next(t for t in r.topics if t.topic == "停电信息")
    assert outage.total > 1.5 * outage.previous  # the storm and the season
    assert outage.change == pytest.approx((outage.total - outage.previous) / outage.previous)


def test_a_search_is_placed_by_filter_then_choice_then_top_result():
    def search(**kw):
        base = {"query_id": "q", "ts": 0.0, "at": "2025-07-01 09:00:00", "query": "问题",
                "results": [("a", 0.5, "电费账单")], "confident": False, "category": None,
                "agent": None}
        return Search(**(base | kw))

    by_id = {"b": {"category": "计量与电能表"}}
    assert _placed(search(category="故障报修"), by_id) == ("故障报修", True)
    assert _placed(search(chosen="b"), by_id) == ("计量", True)
    assert _placed(search(chosen="a"), by_id) == ("电费电价/缴费", True)
    assert _placed(search(confident=True), by_id) == ("电费电价/缴费", True)
    assert _placed(search(), by_id) == ("电费电价/缴费", False)
    assert _placed(search(results=[]), by_id) == (OTHER, False)
    assert _placed(search(results=[("c", 0.4, "安全用电")], confident=True), by_id) == (
        OTHER, True)


def test_typing_is_collapsed_per_agent_and_kept_when_the_agent_chose():
    def s(qid, ts, query, agent="A1", chosen=None):
        return Search(qid, ts, "", query, [], False, None, agent, chosen)

    seq = [s("1", 0, "家里"), s("2", 1, "家里停点"), s("3", 2, "家里停电了"),
           s("4", 3, "家里", agent="A2"), s("5", 60, "家里停电了怎么办"),
           s("6", 61, "电费", chosen="x"), s("7", 62, "电费怎么交"),
           s("8", 63, "我手机138"), s("9", 64, "我手机[手机号]停电了")]
    assert [x.query_id for x in typed_out(seq)] == ["3", "4", "5", "6", "7", "9"]


# Frequent questions.

def test_phrasings_of_one_question_are_merged():
    groups = themes.merge_near(Counter(themes.question_key(q) for q in [
        "请问家里停电了？", "家里停电了啊", "家里停电了", "你好 家里停电了。", "电费怎么交"]))
    assert [(g.label, g.count) for g in groups] == [("家里停电了", 4), ("电费怎么交", 1)]


def test_frequent_questions_and_their_answers(month):
    r, kb = month["report"], month["kb"]
    top = r.top_questions
    assert len(top) == 20 and [q.count for q in top] == sorted((q.count for q in top),
                                                               reverse=True)
    keys = [themes.question_key(q.text) for q in top]
    assert len(set(keys)) == len(keys)
    # "请问…", "…？", "…啊" and the bare question are one question.
    typed = defaultdict(Counter)
    for raw in month["now"].raw_queries:
        typed[themes.question_key(mask(raw))][raw] += 1
    single = [(q, k) for q, k in zip(top, keys) if q.phrasings == 1]
    assert single and all(q.count == typed[k].total() for q, k in single)
    assert any(len(typed[k]) > 1 for _, k in single)
    titles = {a["id"]: a["title"] for a in kb.articles()}
    for q in top:
        assert q.answers and all(titles[a.id] == a.title for a in q.answers)
        assert 0 < q.answers[0].share <= 1


# Content gaps.

def theme_of(report, question):
    key = themes.question_key(question)
    return next((t for t in report.themes if any(k == key for k, _ in t.members)), None)


def test_questions_without_an_article_form_one_theme(month):
    r = month["report"]
    asked = {q for q in logsim.UNCOVERED["需求响应"] if "需求响应" in q
             and theme_of(r, q) is not None}
    assert len(asked) >= 3
    [theme] = {id(theme_of(r, q)): theme_of(r, q) for q in asked}.values()
    assert theme.missing
    assert all("需求响应" in k for k, _ in theme.members)


@pytest.mark.parametrize("kind", ["燃气", "自来水"])
def test_out_of_scope_questions_cluster_into_a_theme(month, kind):
    r = month["report"]
    outside = {themes.question_key(q) for qs in logsim.OUT_OF_SCOPE.values() for q in qs}
    mine = {themes.question_key(q) for q in logsim.OUT_OF_SCOPE[kind]}
    best = max(r.themes, key=lambda t: len(mine & {k for k, _ in t.members}))
    keys = {k for k, _ in best.members}
    assert len(mine & keys) >= 3
    assert sum(n for k, n in best.members if k in outside) >= 0.75 * best.count
    assert best.missing


def test_gap_themes_hold_every_unanswered_search(month):
    r = month["report"]
    assert r.unanswered == r.searches - r.confident
    assert sum(t.count for t in r.themes) == r.unanswered
    assert [t.count for t in r.themes] == sorted((t.count for t in r.themes), reverse=True)


# Masking, feedback, articles never found.

def test_no_personal_number_is_stored(month):
    path, now = month["path"], month["now"]
    queries = [q for (q,) in all_rows(path, "SELECT query FROM searches")]
    comments = [c for (c,) in all_rows(path, "SELECT comment FROM feedback WHERE comment "
                                       "IS NOT NULL")]
    assert len(now.personal) > 50
    assert not [t for t in queries + comments if re.search(r"\d(?:[ \-]?\d){6,}", t)]
    assert any("[手机号]" in q for q in queries) and any("[身份证号]" in q for q in queries)
    assert any("[银行卡号]" in q for q in queries) and any("[户号]" in q for q in queries)
    raw = b"".join(p.read_bytes() for p in path.parent.glob(LOG_FILE + "*"))
    for query in now.personal:
        for number in re.findall(r"\d[\d \-]{6,}\d", query):
            assert number.encode() not in raw, number


def test_articles_rated_not_useful_come_first(month):
    r, now = month["report"], month["now"]
    worst = [v.id for v in r.negative[:2]]
    assert set(worst) == set(sorted(a["id"] for a in month["kb"].articles())[:2])
    assert {v.id: v.not_useful for v in r.negative} == dict(now.negative)
    comments = [c for v in r.negative for c in v.comments]
    assert "客户[手机号]反映这个说法不准确" in comments


def test_articles_never_found_are_those_never_in_a_top_three(month):
    r, kb = month["report"], month["kb"]
    seen = set()
    for (results,) in all_rows(month["path"], "SELECT results FROM searches "
                               "WHERE at LIKE '2025-07%'"):
        seen |= {row[0] for row in json.loads(results)[:3]}
    assert {a["id"] for a in r.never_found} == {a["id"] for a in kb.articles()} - seen


def small_log(tmp_path, searches):
    """A log written through QueryLog from (query, [(id, score, category)], confident)."""
    path = tmp_path / LOG_FILE
    log = QueryLog(LogSettings(path))
    at = datetime(2025, 7, 10, 10, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
    ids = []
    for n, (query, results, confident) in enumerate(searches):
        hits = [FakeHit(i, s, confident and k == 0, c) for k, (i, s, c) in enumerate(results)]
        ids.append(log.log_search(query, hits, agent=f"A{n}", at=at + 60 * n))
    log.close()
    return path, ids


ARTICLES = [{"id": i, "title": t, "category": c} for i, t, c in [
    ("a", "停电怎么办", "故障报修"), ("b", "电费怎么交", "缴费渠道"),
    ("c", "电表怎么看", "计量与电能表"), ("d", "过户怎么办", "变更用电")]]


def test_an_article_only_ever_fourth_is_never_found(tmp_path):
    results = [("a", 0.6, "故障报修"), ("b", 0.5, "缴费渠道"), ("c", 0.4, "计量与电能表"),
               ("d", 0.3, "变更用电")]
    path, _ = small_log(tmp_path, [("停电了", results, True), ("没电了", results, True)])
    report = build_report(path, MONTH, ARTICLES)
    assert [a["id"] for a in report.never_found] == ["d"]


def test_an_empty_month_renders_a_short_report(tmp_path):
    path, _ = small_log(tmp_path, [("停电了", [("a", 0.6, "故障报修")], True)])
    report = build_report(path, "2025-08", ARTICLES)
    assert report.searches == 0 and report.themes == []
    assert "2025年8月没有检索记录" in render(report, "html")
    assert "2025年8月没有检索记录" in render(report, "md")


def test_typed_text_is_escaped_in_the_html(tmp_path):
    hostile = "<script>alert(1)</script>停电"
    path, _ = small_log(tmp_path, [(hostile, [("a", 0.3, "故障报修")], False)] * 3)
    html = render(build_report(path, MONTH, ARTICLES), "html")
    assert "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;停电" in html


def test_themes_without_a_model_use_bigram_overlap(tmp_path):
    searches = [(q, [("a", 0.3, "故障报修")], False) for q in
                ["燃气费怎么交", "燃气费怎么缴纳", "燃气费怎么交啊", "宽带断网了", "宽带断网怎么修"]]
    path, _ = small_log(tmp_path, searches)
    report = build_report(path, MONTH, ARTICLES, embedder=None)
    labels = sorted(sorted(k for k, _ in t.members) for t in report.themes)
    assert labels == [["宽带断网了", "宽带断网怎么修"], ["燃气费怎么交", "燃气费怎么缴纳"]]


# Rendering.

def test_the_html_report_renders_with_its_charts(month, tmp_path):
    html = render(month["report"], "html")
    target = tmp_path / f"report-{MONTH}.html"
    target.write_text(html, encoding="utf-8")
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(target, ARTIFACTS / f"report-test-{MONTH}.html")
    text = target.read_text(encoding="utf-8")
    for heading in ("95598 知识库服务诊断月报", "2025年7月", "一、话务量", "二、业务主题分布与环比",
                    "三、高频问题及答复", "四、内容缺口：编辑待办", "4.1 知识库没有答案",
                    "五、坐席反馈“没用”的文章", "六、本月从未被检索到的文章"):
        assert heading in text, heading
    assert "<script" not in text and not re.search(r"(src|href)=[\"']?https?:", text)
    images = re.findall(r'<img src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) == 3  # by day, by hour, by topic
    for image in images:
        svg = ET.fromstring(base64.b64decode(image))
        assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    day_chart = base64.b64decode(images[0]).decode("utf-8")
    assert day_chart.count("<rect ") >= 31 + 1
    r = month["report"]
    assert r.top_questions[0].text.replace("&", "&amp;") in text
    assert f"{r.searches:,}" in text


def test_the_markdown_report(month):
    md = render(month["report"], "md")
    assert md.startswith("# 95598 知识库服务诊断月报（2025年7月）")
    assert "| 停电信息 |" in md and "## 四、内容缺口：编辑待办" in md
    assert "data:image" not in md


# The command and the page.

@pytest.fixture
def run(month, monkeypatch):
    monkeypatch.setenv("KB_CONTENT_DIR", str(month["kb"].content_dir))
    monkeypatch.setenv("KB_DATA_DIR", str(month["kb"].data_dir))

    def invoke(*args):
        return CliRunner().invoke(cli, list(args), catch_exceptions=False)

    return invoke


def test_kb_report_writes_the_file(run, tmp_path):
    out = tmp_path / "july.html"
    result = run("report", "--month", MONTH, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert re.fullmatch(r"report 2025-07: \d+ searches, \d+ without a confident answer, \d+ gap "
                        r"themes, \d+ articles rated not useful, \d+ never found; wrote "
                        + re.escape(str(out)) + "\n", result.output)
    assert "四、内容缺口" in out.read_text(encoding="utf-8")


def test_kb_report_of_a_month_with_no_searches_says_so(run, tmp_path):
    out = tmp_path / "empty.md"
    result = run("report", "--month", "2025-08", "--format", "md", "--out", str(out))
    assert result.output == f"report 2025-08: no searches were logged that month; wrote {out}\n"
    assert "2025年8月没有检索记录" in out.read_text(encoding="utf-8")


def test_kb_report_markdown_to_stdout(run):
    result = run("report", "--month", MONTH, "--format", "md", "--out", "-")
    assert result.exit_code == 0
    assert result.output.startswith("# 95598 知识库服务诊断月报（2025年7月）\n")


def test_kb_report_refuses_a_bad_month(run):
    result = run("report", "--month", "2025-13")
    assert result.exit_code == 2
    assert "'2025-13' is not a month: use YYYY-MM" in result.output


def test_kb_report_without_a_log_says_where_it_looked(run, monkeypatch, tmp_path, month):
    empty = tmp_path / "data"
    shutil.copytree(month["kb"].data_dir / "index", empty / "index")
    monkeypatch.setenv("KB_DATA_DIR", str(empty))
    result = CliRunner().invoke(cli, ["report", "--month", MONTH])
    assert result.exit_code == 3
    assert f"error: no query log at {empty / LOG_FILE}" in result.output


def test_the_reports_page_lists_and_shows_months(month):
    kb = month["kb"]
    # Logging off here: the writer's retention purge would clear these 2025 months.
    settings = Settings(content_dir=kb.content_dir, data_dir=kb.data_dir, query_log=False)
    with TestClient(create_app(settings, kb)) as client:
        listing = client.get("/reports")
        assert listing.status_code == 200
        assert "href='/reports/2025-07'" in listing.text
        assert listing.text.index("2025-07") < listing.text.index("2025-06")
        page = client.get(f"/reports/{MONTH}")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert "四、内容缺口：编辑待办" in page.text
        assert client.get(f"/reports/{MONTH}").text == page.text  # cached until new entries
        assert client.get("/reports/2025-13").status_code == 422
        missing = client.get("/reports/2019-01")
        assert missing.status_code == 404 and "没有检索记录" in missing.text

