"""The monthly service-diagnosis report, drawn from the query log (kb/querylog.py).

The service centre reviews every month what customers called about and where the knowledge base
fell short. `build_report` reads one month (and the month before, for the change per topic) and
returns a `Report`; kb/report_render.py turns it into HTML or Markdown. Categories are grouped
into the centre's diagnosis topics by CATEGORY_TOPIC."""

import calendar
import json
import re
import sqlite3
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from kb import themes
from kb.errors import NoQueryLog

MONTH_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
OTHER = "其他"
TOPICS = ("故障报修", "停电信息", "电费电价/缴费", "催费与欠费停复电", "短信通知", "低压预付费购电",
          "业扩报装与变更", "计量", "服务规范与投诉", OTHER)
CATEGORY_TOPIC = {  # content categories (docs/content-guide.md) -> diagnosis topics
    "故障报修": "故障报修", "家电损坏": "故障报修",
    "停电信息": "停电信息",
    "电价政策": "电费电价/缴费", "电费账单": "电费电价/缴费", "缴费渠道": "电费电价/缴费",
    "催费与欠费停复电": "催费与欠费停复电",
    "短信与通知订阅": "短信通知",
    "低压预付费购电": "低压预付费购电",
    "业扩报装": "业扩报装与变更", "变更用电": "业扩报装与变更",
    "计量与电能表": "计量",
    "服务行为规范": "服务规范与投诉", "服务技巧": "服务规范与投诉",
    "特殊群体服务": "服务规范与投诉", "投诉与建议": "服务规范与投诉",
    # 安全用电 and anything new fall under 其他.
}
TOP_QUESTIONS, TOP_THEMES, EXAMPLES, TOP_NEGATIVE = 20, 10, 5, 15
CHOSEN_SHARE = 0.2  # a theme whose answers agents open this often has answers in the KB
TYPING_GAP, TYPING_LOOKAHEAD = 15.0, 30  # seconds between keystroke searches; searches scanned


def topic_of(category: str | None) -> str:
    return CATEGORY_TOPIC.get(category or "", OTHER)


@dataclass
class Search:
    query_id: str
    ts: float
    at: str  # local time, 'YYYY-MM-DD HH:MM:SS'
    query: str  # masked
    results: list[tuple[str, float, str]]  # (article id, score, category), best first
    confident: bool
    category: str | None
    agent: str | None
    chosen: str | None = None  # the article the agent opened or copied first


@dataclass
class MonthLog:
    searches: list[Search]
    events: list[tuple[str, str, str]]  # (query id, article id, opened|copied)
    # One verdict per search and article, the last one given: (query id, article id, useful,
    # comments). The page records 没用 at once and the agent's explanation after it.
    feedback: list[tuple[str, str, bool, list[str]]]
    dropped: int


@dataclass
class Answer:
    id: str
    title: str
    share: float  # of the searches in question


@dataclass
class TopicRow:
    topic: str
    answered: int  # confident, or the agent opened an answer, or filtered by category
    guessed: int  # no confident answer: placed by the nearest article
    previous: int

    @property
    def total(self) -> int:
        return self.answered + self.guessed

    @property
    def change(self) -> float | None:
        return (self.total - self.previous) / self.previous if self.previous else None


@dataclass
class Question:
    text: str  # the most frequent phrasing, as typed (masked)
    count: int
    phrasings: int
    confident_share: float
    answers: list[Answer]  # the top result, most frequent first
    chosen: Answer | None  # what agents opened or copied most


@dataclass
class Example:
    text: str  # the most frequent phrasing, as typed (masked)
    count: int
    chosen: Answer | None  # what agents opened or copied most for it


@dataclass
class Theme:
    """Questions without a confident answer that belong together."""

    label: str
    count: int
    examples: list[Example]
    questions: int
    nearest: Answer | None  # the most frequent top result
    choices: int  # searches where the agent opened or copied an answer
    members: list[tuple[str, int]]  # every question (themes.question_key) and its searches

    @property
    def missing(self) -> bool:
        """True when agents rarely found anything to open: the answer is not in the KB.
        Otherwise they did find one, and the questions' phrasings are what is missing."""
        return self.choices < CHOSEN_SHARE * self.count


@dataclass
class ArticleVerdict:
    id: str
    title: str
    category: str
    not_useful: int
    useful: int
    comments: list[str]


@dataclass
class Report:
    month: str
    previous_month: str
    generated_at: str
    searches: int = 0
    previous_searches: int = 0
    questions: int = 0  # distinct questions after grouping phrasings
    confident: int = 0
    agents: int = 0
    opened: int = 0
    copied: int = 0
    useful: int = 0
    not_useful: int = 0
    dropped: int = 0
    by_day: list[tuple[str, int]] = field(default_factory=list)
    by_hour: list[int] = field(default_factory=lambda: [0] * 24)
    topics: list[TopicRow] = field(default_factory=list)
    top_questions: list[Question] = field(default_factory=list)
    unanswered: int = 0
    themes: list[Theme] = field(default_factory=list)  # all of them, biggest first
    negative: list[ArticleVerdict] = field(default_factory=list)
    never_found: list[dict] = field(default_factory=list)  # id, title, category


def previous_month(month: str) -> str:
    year, mon = map(int, month.split("-"))
    return f"{year - 1}-12" if mon == 1 else f"{year}-{mon - 1:02d}"


def _bounds(month: str) -> tuple[str, str]:
    year, mon = map(int, month.split("-"))
    end = f"{year + 1}-01" if mon == 12 else f"{year}-{mon + 1:02d}"
    return f"{month}-01 00:00:00", f"{end}-01 00:00:00"


@contextmanager
def open_log(path: Path) -> Iterator[sqlite3.Connection]:
    """The log file, read-only; NoQueryLog when there is none."""
    if not Path(path).exists():
        raise NoQueryLog(f"no query log at {path}: `kb serve` writes it as agents search "
                         "(KB_QUERY_LOG=true); check KB_DATA_DIR")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        yield db
    finally:
        db.close()


def months(path: Path) -> list[tuple[str, int]]:
    """(YYYY-MM, searches) for every month with searches in the log, newest first."""
    with open_log(path) as db:
        rows = db.execute("SELECT substr(at, 1, 7), count(*) FROM searches GROUP BY 1 "
                          "ORDER BY 1 DESC").fetchall()
    return [(m, n) for m, n in rows]


def month_signature(path: Path, month: str) -> tuple:
    """What changes when anything is logged in `month`: (searches, last time, verdicts,
    events). Zero searches: nothing to report."""
    start, end = _bounds(month)
    with open_log(path) as db:
        return tuple(db.execute(
            "SELECT (SELECT count(*) FROM searches WHERE at >= ?1 AND at < ?2),"
            " (SELECT max(ts) FROM searches WHERE at >= ?1 AND at < ?2),"
            " (SELECT count(*) FROM feedback WHERE at >= ?1 AND at < ?2),"
            " (SELECT count(*) FROM events WHERE at >= ?1 AND at < ?2)", (start, end)).fetchone())


def read_month(db: sqlite3.Connection, month: str) -> MonthLog:
    start, end = _bounds(month)
    window = "WHERE at >= ? AND at < ? ORDER BY at"
    searches = [Search(qid, ts, at, q, [tuple(r) for r in json.loads(res)], bool(conf), cat,
                       agent)
                for qid, ts, at, q, res, conf, cat, agent in db.execute(
                    "SELECT query_id, ts, at, query, results, confident, category, agent "
                    "FROM searches " + window, (start, end))]
    events = db.execute(f"SELECT query_id, article_id, kind FROM events {window}",
                        (start, end)).fetchall()
    verdicts: dict[tuple[str, str], tuple[bool, list[str]]] = {}
    for q, a, useful, comment in db.execute(
            f"SELECT query_id, article_id, useful, comment FROM feedback {window}", (start, end)):
        comments = verdicts.get((q, a), (True, []))[1]
        verdicts[(q, a)] = (bool(useful), comments + ([comment] if comment else []))
    feedback = [(q, a, u, c) for (q, a), (u, c) in verdicts.items()]
    dropped = db.execute("SELECT coalesce(sum(count), 0) FROM drops WHERE at >= ? AND at < ?",
                         (start, end)).fetchone()[0]
    chosen: dict[str, str] = {}
    for qid, article_id, _ in events:
        chosen.setdefault(qid, article_id)
    for s in searches:
        s.chosen = chosen.get(s.query_id)
    rated = {qid for qid, *_ in feedback}
    return MonthLog(typed_out(searches, rated), events, feedback, dropped)


def typed_out(searches: list[Search], keep: set[str] = frozenset()) -> list[Search]:
    """The searches without those typing overtook. The agents' page searches as the agent
    types, so "家里", "家里停电", "家里停电了怎么办" are one question: a search is dropped when
    the same agent's next keystrokes (within TYPING_GAP seconds of each other) extend or correct
    it, unless the agent opened, copied or rated one of its answers."""
    by_agent: dict[str | None, list[Search]] = {}
    for s in sorted(searches, key=lambda s: s.ts):
        by_agent.setdefault(s.agent, []).append(s)
    dropped: set[str] = set()
    for seq in by_agent.values():
        keys = [themes.typing_key(s.query) for s in seq]
        for i, s in enumerate(seq):
            if s.chosen or s.query_id in keep:
                continue
            last = s.ts
            for j in range(i + 1, min(i + 1 + TYPING_LOOKAHEAD, len(seq))):
                if seq[j].ts - last > TYPING_GAP:
                    break
                if _continues(keys[i], keys[j]):
                    dropped.add(s.query_id)
                    break
                last = seq[j].ts
    return [s for s in searches if s.query_id not in dropped]


def _continues(before: str, after: str) -> bool:
    """True when `after` is `before` typed further, or with its last characters retyped."""
    shared = 0
    for a, b in zip(before, after):
        if a != b:
            break
        shared += 1
    return shared >= max(1, len(before) - (2 if len(before) >= 6 else 1))


def build_report(path: Path, month: str, articles: list[dict], embedder=None,
                 timezone: str = "Asia/Shanghai") -> Report:
    """The report of `month` ('YYYY-MM') from the log at `path`. `articles` are the live
    index's (for titles and the never-found list); `embedder` groups the unanswered questions
    into themes (bigram overlap without one)."""
    if not MONTH_RE.match(month):
        raise ValueError(f"month '{month}' is not YYYY-MM")
    with open_log(path) as db:
        log = read_month(db, month)
        before = read_month(db, previous_month(month))
    by_id = {a["id"]: a for a in articles}
    report = Report(month, previous_month(month),
                    datetime.now(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M"))
    s = log.searches
    report.searches, report.previous_searches = len(s), len(before.searches)
    report.confident = sum(x.confident for x in s)
    report.agents = len({x.agent for x in s if x.agent})
    report.opened = sum(kind == "opened" for _, _, kind in log.events)
    report.copied = sum(kind == "copied" for _, _, kind in log.events)
    report.useful = sum(u for _, _, u, _ in log.feedback)
    report.not_useful = len(log.feedback) - report.useful
    report.dropped = log.dropped
    report.by_day, report.by_hour = _volume(month, s)
    report.topics = _topics(s, before.searches, by_id)
    keys = [themes.question_key(x.query) for x in s]
    groups = themes.merge_near(Counter(keys))
    report.questions = len(groups)
    report.top_questions = [_question(g, s, keys, by_id) for g in groups[:TOP_QUESTIONS]]
    _gaps(report, s, keys, groups, by_id, embedder)
    report.negative = _negative(log.feedback, by_id)
    seen = {r[0] for x in s for r in x.results[:3]}
    report.never_found = sorted(({k: a[k] for k in ("id", "title", "category")}
                                 for a in articles if a["id"] not in seen),
                                key=lambda a: (a["category"], a["id"]))
    return report


def _volume(month: str, searches: list[Search]) -> tuple[list[tuple[str, int]], list[int]]:
    year, mon = map(int, month.split("-"))
    days = Counter(x.at[:10] for x in searches)
    by_day = [(f"{month}-{d:02d}", days[f"{month}-{d:02d}"])
              for d in range(1, calendar.monthrange(year, mon)[1] + 1)]
    hours = Counter(int(x.at[11:13]) for x in searches)
    return by_day, [hours[h] for h in range(24)]


def _placed(s: Search, by_id: dict) -> tuple[str, bool]:
    """(topic, answered) of one search: by the category the agent filtered on, else the
    article the agent chose, else the top result (answered only when confident)."""
    if s.category:
        return topic_of(s.category), True
    if s.chosen:
        category = next((c for i, _, c in s.results if i == s.chosen),
                        by_id.get(s.chosen, {}).get("category"))
        return topic_of(category), True
    if s.results:
        return topic_of(s.results[0][2]), s.confident
    return OTHER, False


def _topics(now: list[Search], before: list[Search], by_id: dict) -> list[TopicRow]:
    rows = {t: TopicRow(t, 0, 0, 0) for t in TOPICS}
    for s in now:
        topic, answered = _placed(s, by_id)
        if answered:
            rows[topic].answered += 1
        else:
            rows[topic].guessed += 1
    for s in before:
        rows[_placed(s, by_id)[0]].previous += 1
    return list(rows.values())


def _answer(counter: Counter, total: int, by_id: dict) -> list[Answer]:
    return [Answer(i, by_id.get(i, {}).get("title", f"（已删除）{i}"), n / total)
            for i, n in counter.most_common() if total]


def _question(group: themes.Group, searches: list[Search], keys: list[str],
              by_id: dict) -> Question:
    members = {k for k, _ in group.members}
    mine = [s for s, k in zip(searches, keys) if k in members]
    text = Counter(s.query.strip() for s in mine).most_common(1)[0][0]
    top = Counter(s.results[0][0] for s in mine if s.results)
    chosen = Counter(s.chosen for s in mine if s.chosen)
    return Question(text, len(mine), len(group.members),
                    sum(s.confident for s in mine) / len(mine),
                    _answer(top, len(mine), by_id)[:2],
                    next(iter(_answer(chosen, sum(chosen.values()), by_id)), None))


def _gaps(report: Report, searches, keys, groups, by_id, embedder) -> None:
    """Questions without a confident answer, grouped into themes, biggest first."""
    unanswered = [(s, k) for s, k in zip(searches, keys) if not s.confident]
    report.unanswered = len(unanswered)
    if not unanswered:
        return
    missed = Counter(k for _, k in unanswered)
    label_of = {k: g.label for g in groups for k, _ in g.members}
    counts = Counter()
    for key, n in missed.items():
        counts[label_of[key]] += n
    embed = themes.encoder(embedder) if embedder is not None else None
    clustered = themes.cluster(dict(counts), embed)
    by_label: dict[str, list[Search]] = {}
    for s, k in unanswered:
        by_label.setdefault(label_of[k], []).append(s)
    for theme in clustered:
        mine = [s for k, _ in theme.members for s in by_label[k]]
        examples = [_example(by_label[k], by_id) for k, _ in theme.members[:EXAMPLES]]
        top = Counter(s.results[0][0] for s in mine if s.results)
        report.themes.append(Theme(
            examples[0].text, len(mine), examples, len(theme.members),
            next(iter(_answer(top, len(mine), by_id)), None),
            sum(1 for s in mine if s.chosen), theme.members))


def _example(searches: list[Search], by_id: dict) -> Example:
    chosen = Counter(s.chosen for s in searches if s.chosen)
    return Example(Counter(s.query.strip() for s in searches).most_common(1)[0][0],
                   len(searches), next(iter(_answer(chosen, sum(chosen.values()), by_id)), None))


def _negative(feedback, by_id: dict) -> list[ArticleVerdict]:
    rows: dict[str, ArticleVerdict] = {}
    for _, article_id, useful, comments in feedback:
        a = by_id.get(article_id, {})
        row = rows.setdefault(article_id, ArticleVerdict(
            article_id, a.get("title", f"（已删除）{article_id}"), a.get("category", ""),
            0, 0, []))
        if useful:
            row.useful += 1
        else:
            row.not_useful += 1
            row.comments += [c for c in comments if c not in row.comments]
    bad = [r for r in rows.values() if r.not_useful]
    return sorted(bad, key=lambda r: (-r.not_useful, r.useful, r.id))
