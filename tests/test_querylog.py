"""The query log: masking, the background writer, retention, and the feedback and event
endpoints of the real app (real e5, real SQLite files in tmp_path)."""

import json
import re
import sqlite3
import threading
import time
from collections import namedtuple
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from kb.config import Settings
from kb.errors import ConfigError
from kb.masking import mask
from kb.querylog import LOG_FILE, LogSettings, QueryLog, purge
from server.app import create_app

# For the writer's own tests, where ranking plays no part: a stand-in with the fields it reads.
FakeHit = namedtuple("FakeHit", "id score confident category")
HITS = [FakeHit("repair-home-outage", 0.61234, True, "故障报修"),
        FakeHit("repair-arrival-time", 0.4, False, "故障报修")]
DAY = 86_400


@pytest.mark.parametrize("text, expected", [
    ("我手机13812345678停电了", "我手机[手机号]停电了"),
    ("电话 138 1234 5678 回电", "电话 [手机号] 回电"),
    ("回拨138-1234-5678", "回拨[手机号]"),
    ("回拨138.1234.5678", "回拨[手机号]"),
    ("号码138_1234_5678", "号码[手机号]"),
    ("+86 139-1234-5678", "[手机号]"),
    ("１３８１２３４５６７８", "[手机号]"),
    ("座机010-87654321没人接", "座机[电话]没人接"),
    ("(0571)87654321", "[电话]"),
    ("0471 8765 4321", "[电话]"),
    ("身份证110101199003071234", "身份证[身份证号]"),
    ("身份证号11010119900307123X过户", "身份证号[身份证号]过户"),
    ("110101 19900307 123x 办过户", "[身份证号] 办过户"),
    ("卡号6222 0212 3456 7890 123扣款", "卡号[银行卡号]扣款"),
    ("6222021234567890", "[银行卡号]"),
    ("户号3301234567 欠费", "户号[户号] 欠费"),
    ("3301234567890欠费", "[户号]欠费"),
    ("户号是 1234 5678", "户号是 [户号]"),
    ("用户编号：556677", "用户编号：[户号]"),
    ("邮箱 zhang.san@163.com 收不到账单", "邮箱 [邮箱] 收不到账单"),
    ("订单号A1234567890", "订单号A[号码]"),
])
def test_mask_replaces_personal_numbers(text, expected):
    assert mask(text) == expected


@pytest.mark.parametrize("text", [
    "拨打95598转人工", "电费300元", "2025-03-01停电", "电压只有190多伏", "2025年3月电费", "",
    "家里突然没电了",
])
def test_mask_keeps_ordinary_text(text):
    assert mask(text) == text


@pytest.fixture
def log(tmp_path):
    querylog = QueryLog(LogSettings(tmp_path / LOG_FILE))
    yield querylog
    querylog.close()


def rows(path, sql):
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def test_a_search_is_stored_masked_with_its_results(log, tmp_path):
    qid = log.log_search("户号3301234567 家里没电了", HITS, category="故障报修", agent="A001")
    assert re.fullmatch(r"[0-9a-f]{32}", qid)
    assert log.flush()
    [row] = rows(tmp_path / LOG_FILE, "SELECT query_id, at, query, results, top_id, top_score, "
                 "confident, category, agent FROM searches")
    assert row[0] == qid
    assert row[2] == "户号[户号] 家里没电了"
    assert json.loads(row[3]) == [["repair-home-outage", 0.6123, "故障报修"],
                                  ["repair-arrival-time", 0.4, "故障报修"]]
    assert row[4:] == ("repair-home-outage", 0.6123, 1, "故障报修", "A001")
    local = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H")
    assert row[1].startswith(local)  # the centre's time, whatever the server's zone


def test_a_search_without_results_is_logged_as_not_confident(log, tmp_path):
    log.log_search("燃气费怎么交", [])
    assert log.flush()
    assert rows(tmp_path / LOG_FILE, "SELECT top_id, confident, results FROM searches") == [
        (None, 0, "[]")]


def test_events_and_feedback_are_stored_and_comments_masked(log, tmp_path):
    qid = log.log_search("家里没电了", HITS)
    assert log.log_event(qid, "repair-home-outage", "copied", "A002")
    assert log.log_feedback(qid, "repair-home-outage", False, "客户13912345678说不对", "A002")
    assert log.flush()
    path = tmp_path / LOG_FILE
    assert rows(path, "SELECT query_id, article_id, kind, agent FROM events") == [
        (qid, "repair-home-outage", "copied", "A002")]
    assert rows(path, "SELECT article_id, useful, comment FROM feedback") == [
        ("repair-home-outage", 0, "客户[手机号]说不对")]
    with pytest.raises(ValueError, match="opened, copied"):
        log.log_event(qid, "repair-home-outage", "printed")


def test_a_full_queue_drops_rather_than_waits(tmp_path):
    """The writer is stuck behind another process's write lock; searches go on, and what the
    queue cannot hold is dropped and counted, then written once the lock is gone."""
    path = tmp_path / LOG_FILE
    log = QueryLog(LogSettings(path, capacity=3, busy_timeout=60))
    assert log.flush()  # the start-up purge is done; the writer waits for work
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        log.log_search("第一条", HITS)
        deadline = time.monotonic() + 30
        while not log._queue.empty():  # the writer took it and now waits for the lock
            assert time.monotonic() < deadline
            time.sleep(0.01)
        ids: list[str] = []
        searching = threading.Thread(
            target=lambda: ids.extend(log.log_search(f"问题{n}", HITS) for n in range(8)))
        searching.start()
        searching.join(timeout=20)
        assert not searching.is_alive(), "log_search waited for the writer"
        assert len(ids) == 8 and log.dropped == 5  # 3 queued, 5 dropped
        assert rows(path, "SELECT count(*) FROM searches") == [(0,)]
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert log.flush()
    log.close()
    assert rows(path, "SELECT count(*) FROM searches") == [(4,)]
    assert rows(path, "SELECT sum(count) FROM drops") == [(5,)]


def test_retention_purges_old_rows_at_start(tmp_path):
    path = tmp_path / LOG_FILE
    log = QueryLog(LogSettings(path, retention_days=30))
    now = time.time()
    old = log.log_search("很久以前的问题", HITS, at=now - 40 * DAY)
    log.log_feedback(old, "repair-home-outage", True, at=now - 40 * DAY)
    log.log_event(old, "repair-home-outage", "opened", at=now - 40 * DAY)
    recent = log.log_search("上周的问题", HITS, at=now - 7 * DAY)
    log.close()
    assert rows(path, "SELECT count(*) FROM searches") == [(2,)]  # nothing purged mid-run

    QueryLog(LogSettings(path, retention_days=30)).close()
    assert rows(path, "SELECT query_id FROM searches") == [(recent,)]
    assert rows(path, "SELECT count(*) FROM feedback") == [(0,)]
    assert rows(path, "SELECT count(*) FROM events") == [(0,)]


def test_purge_deletes_before_the_cutoff_only(log, tmp_path):
    now = time.time()
    for days in (400, 366, 364, 1):
        log.log_search(f"{days} 天前", HITS, at=now - days * DAY)
    assert log.flush()
    db = sqlite3.connect(tmp_path / LOG_FILE)
    assert purge(db, now - 365 * DAY) == 2
    assert [q for (q,) in db.execute("SELECT query FROM searches ORDER BY ts")] == [
        "364 天前", "1 天前"]
    db.close()


def test_close_writes_what_is_queued(tmp_path):
    log = QueryLog(LogSettings(tmp_path / LOG_FILE))
    for n in range(1000):
        log.log_search(f"问题{n}", HITS)
    log.close()
    assert rows(tmp_path / LOG_FILE, "SELECT count(*) FROM searches") == [(1000,)]


# The real app: the search route logs, the page's endpoints record.

@pytest.fixture(scope="module")
def shared_kb(indexed_copy, e5):
    """One index for the module (indexing takes seconds); each test gets a fresh log."""
    return indexed_copy("querylog", e5)


@pytest.fixture
def app_client(shared_kb):
    app = create_app(Settings(content_dir=shared_kb.content_dir, data_dir=shared_kb.data_dir),
                     shared_kb)
    with TestClient(app) as client:
        yield client
    for name in (LOG_FILE, LOG_FILE + "-wal", LOG_FILE + "-shm"):
        (shared_kb.data_dir / name).unlink(missing_ok=True)


def logged(client, sql):
    assert client.app.state.querylog.flush()
    return rows(client.app.state.kb.data_dir / LOG_FILE, sql)


def test_search_returns_a_query_id_and_is_logged(app_client):
    r = app_client.get("/api/search", params={"q": "家里没电了", "agent": "A001"})
    assert r.status_code == 200
    qid = r.json()["query_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", qid)
    [(query, top_id, agent)] = logged(
        app_client, f"SELECT query, top_id, agent FROM searches WHERE query_id = '{qid}'")
    assert (query, top_id, agent) == ("家里没电了", "repair-home-outage", "A001")


def test_agent_id_from_the_header_and_a_malformed_one_ignored(app_client):
    app_client.get("/api/search", params={"q": "停电了"}, headers={"X-Agent-Id": "A007"})
    r = app_client.get("/api/search", params={"q": "电费贵"}, headers={"X-Agent-Id": "x; drop"})
    assert r.status_code == 200
    assert logged(app_client, "SELECT query, agent FROM searches ORDER BY ts") == [
        ("停电了", "A007"), ("电费贵", None)]


def test_a_caller_phone_number_never_reaches_the_log_file(app_client):
    r = app_client.get("/api/search", params={"q": "13812345678 家里停电了"})
    assert r.status_code == 200 and r.json()["query"] == "13812345678 家里停电了"
    assert logged(app_client, "SELECT query FROM searches") == [("[手机号] 家里停电了",)]
    raw = (app_client.app.state.kb.data_dir / LOG_FILE).read_bytes()
    assert b"13812345678" not in raw


def test_a_refused_search_is_not_logged(app_client):
    assert app_client.get("/api/search", params={"q": "？？"}).status_code == 422
    assert logged(app_client, "SELECT count(*) FROM searches") == [(0,)]


def test_feedback_is_recorded(app_client):
    qid = app_client.get("/api/search", params={"q": "家里没电了"}).json()["query_id"]
    r = app_client.post("/api/feedback", json={
        "query_id": qid, "article_id": "repair-home-outage", "useful": False,
        "comment": "客户说户号3301234567也停了"}, headers={"X-Agent-Id": "A003"})
    assert r.status_code == 200 and r.json() == {"logged": True}
    assert logged(app_client, "SELECT query_id, article_id, useful, comment, agent FROM feedback"
                  ) == [(qid, "repair-home-outage", 0, "客户说户号[户号]也停了", "A003")]


QID = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("agent, kept", [("张三", "张三"), ("A" * 65, None), ("A042\n", None)])
def test_feedback_and_events_drop_a_malformed_agent_id_rather_than_refuse(app_client, agent,
                                                                          kept):
    # The agents' page sends its id as ?agent=: a header cannot carry 张三.
    about = {"query_id": QID, "article_id": "repair-home-outage"}
    r = app_client.post("/api/feedback", params={"agent": agent}, json=about | {"useful": True})
    assert r.status_code == 200
    r = app_client.post("/api/events", params={"agent": agent}, json=about | {"kind": "copied"})
    assert r.status_code == 200
    assert logged(app_client, "SELECT agent FROM feedback") == [(kept,)]
    assert logged(app_client, "SELECT agent FROM events") == [(kept,)]


@pytest.mark.parametrize("body", [
    {"query_id": QID, "article_id": "repair-home-outage"},  # no verdict
    {"query_id": QID, "article_id": "repair-home-outage", "useful": "yes"},
    {"query_id": QID, "article_id": "repair-home-outage", "useful": 1},
    {"query_id": QID, "article_id": "repair-home-outage", "useful": True, "comment": "长" * 501},
    {"query_id": "not-a-query-id", "article_id": "repair-home-outage", "useful": True},
    {"article_id": "repair-home-outage", "useful": True},
    {"query_id": QID, "article_id": "../etc/passwd", "useful": True},
    {"query_id": QID, "article_id": "repair-home-outage", "useful": True, "score": 5},
    [],
])
def test_bad_feedback_is_refused_with_422(app_client, body):
    assert app_client.post("/api/feedback", json=body).status_code == 422


def test_feedback_that_is_not_json_is_refused_with_422(app_client):
    r = app_client.post("/api/feedback", content=b"useful=true",
                        headers={"Content-Type": "application/json"})
    assert r.status_code == 422


def test_feedback_on_an_unknown_article_is_404(app_client):
    r = app_client.post("/api/feedback", json={
        "query_id": QID, "article_id": "no-such-article", "useful": True})
    assert r.status_code == 404


def test_a_comment_of_500_characters_is_accepted(app_client):
    r = app_client.post("/api/feedback", json={
        "query_id": QID, "article_id": "repair-home-outage", "useful": False,
        "comment": "长" * 500})
    assert r.status_code == 200


def test_events_are_recorded_and_unknown_kinds_refused(app_client):
    qid = app_client.get("/api/search", params={"q": "家里没电了"}).json()["query_id"]
    for kind in ("opened", "copied"):
        r = app_client.post("/api/events", json={
            "query_id": qid, "article_id": "repair-home-outage", "kind": kind})
        assert r.status_code == 200 and r.json() == {"logged": True}
    r = app_client.post("/api/events", json={
        "query_id": qid, "article_id": "repair-home-outage", "kind": "printed"})
    assert r.status_code == 422
    assert logged(app_client, "SELECT kind FROM events ORDER BY ts") == [("opened",), ("copied",)]


def test_with_the_log_off_nothing_is_written(shared_kb):
    kb = shared_kb
    (kb.data_dir / LOG_FILE).unlink(missing_ok=True)
    settings = Settings(content_dir=kb.content_dir, data_dir=kb.data_dir, query_log=False)
    with TestClient(create_app(settings, kb)) as client:
        r = client.get("/api/search", params={"q": "家里没电了"})
        assert r.status_code == 200 and r.json()["query_id"] is None
        r = client.post("/api/feedback", json={
            "query_id": QID, "article_id": "repair-home-outage", "useful": True})
        assert r.status_code == 200 and r.json() == {"logged": False}
    assert not (kb.data_dir / LOG_FILE).exists()


def test_the_agents_page_loads_the_feedback_script(app_client):
    page = app_client.get("/").text
    assert '<script src="/static/feedback.js" defer></script>' in page
    assert 'data-testid="feedback-useful"' in page and "没用" in page
    assert app_client.get("/static/feedback.js").status_code == 200


def test_a_query_log_that_cannot_be_opened_names_the_file_and_the_setting(tmp_path):
    (tmp_path / "taken").write_text("a file where the log's folder should be")
    path = tmp_path / "taken" / "querylog.sqlite"
    with pytest.raises(ConfigError, match=f"the query log {path} cannot be opened .*"
                                          "KB_QUERY_LOG=false"):
        QueryLog(LogSettings(path))
