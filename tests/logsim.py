"""A month of realistic query-log traffic, for the query-log and report tests and for rendering a
sample report (`python tests/logsim.py --help`).

The questions are the labelled queries of content/_eval/queries.jsonl (popular ones far more
often than others, with the fillers and punctuation agents really type), questions carrying a
caller's phone, ID-card, bank-card or account number, and questions the hotline does not answer
(gas, water, broadband, district heating) or has no article for yet (demand response). Volume
follows the day (office-hour peaks, quiet nights) and the week, with a storm on one day that
brings a wave of outage calls. Everything comes from one seeded random.Random; every search
goes through QueryLog.log_search with the real KnowledgeBase's hits."""

import calendar
import json
import random
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).parent.parent
EVAL = ROOT / "content" / "_eval" / "queries.jsonl"
ZONE = ZoneInfo("Asia/Shanghai")

OUT_OF_SCOPE = {
    "燃气": ["燃气费怎么交", "天然气没气了找谁", "燃气表坏了怎么报修", "煤气灶打不着火怎么办",
           "燃气公司电话多少", "天然气开户要什么材料", "燃气费太贵了能不能便宜"],
    "自来水": ["停水了什么时候来水", "水费怎么查询", "自来水管爆了找谁修", "家里水表不走了",
            "自来水水压太低怎么办", "自来水发黄能喝吗"],
    "宽带": ["宽带断网了怎么报修", "家里路由器连不上网", "光猫红灯一直闪", "宽带续费在哪里交",
           "网速太慢了找谁"],
    "供暖": ["暖气片不热找谁", "供暖费怎么交", "暖气漏水了谁来修", "集中供暖什么时候开始"],
}
# In the hotline's field but without an article: the gap editors should fill.
UNCOVERED = {
    "需求响应": ["需求响应补贴什么时候发", "参加需求响应有什么好处", "错峰用电补贴怎么申请",
             "需求响应邀约短信是什么意思", "需求响应削峰补贴标准是多少"],
}
PERSONAL = [
    "户号{acct}交了电费还没来电", "我手机{phone}收到欠费短信是真的吗",
    "身份证{id}办理过户需要什么", "银行卡{card}代扣电费失败了", "{phone} 家里停电了",
    "户号是 {acct_spaced} 查下电费为什么这么高", "座机{landline}的用户说没接到回访",
    "邮箱{email}收不到电子账单", "用户编号{short}欠费多少",
]
DECORATIONS = ["请问{}", "你好 {}", "{}？", "{}啊", "那个 {}", "{} 。", "{}"]
TOPIC_SEASON = {"停电信息": 2.5, "故障报修": 1.8}  # this month: summer storms
HOURLY = [1, 1, 1, 1, 1, 2, 4, 8, 14, 18, 17, 14, 9, 10, 15, 17, 16, 13, 9, 7, 6, 4, 3, 2]
AGENTS = [f"A{n:03d}" for n in range(1, 25)]


@dataclass
class Generated:
    """What was logged, to check the report against."""

    raw_queries: list[str] = field(default_factory=list)
    personal: list[str] = field(default_factory=list)  # raw queries with personal numbers
    by_day: Counter = field(default_factory=Counter)
    by_hour: Counter = field(default_factory=Counter)
    kinds: Counter = field(default_factory=Counter)  # in_scope, uncovered, out_of_scope, ...
    query_ids: list[str] = field(default_factory=list)
    negative: Counter = field(default_factory=Counter)  # article id -> not-useful verdicts
    storm_day: date | None = None
    typed: int = 0  # searches of a half-typed question, before the one counted


def eval_queries(kb_ids: set[str], path: Path = EVAL) -> tuple[list[dict], list[dict]]:
    """The labelled queries whose article is in the KB, and those whose article is not."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    inside = [r for r in rows if set(r["expected"]) & kb_ids]
    return inside, [r for r in rows if not set(r["expected"]) & kb_ids]


def simulate_month(log, kb, month: str, *, per_day: int = 100, seed: int = 0,
                   season: dict | None = None, storm: bool = True,
                   searched: dict | None = None) -> Generated:
    """Log a month of searches, events and feedback through `log` (a QueryLog). `searched`
    caches the hits of each distinct question, across calls."""
    rng = random.Random(f"{seed}-{month}")
    articles = {a["id"]: a for a in kb.articles()}
    inside, missing = eval_queries(set(articles))
    quiet = set(rng.sample(sorted(articles), len(articles) // 15))  # nobody asks about these
    inside = [r for r in inside if not set(r["expected"]) <= quiet]
    season = TOPIC_SEASON if season is None else season
    # What callers ask about most is the same every month; the season shifts it.
    popularity = _popularity(random.Random(seed), inside, articles, season)
    bad = sorted(articles)[:2]  # answers agents keep marking 没用
    searched = {} if searched is None else searched
    out = Generated()
    year, mon = map(int, month.split("-"))
    days = [date(year, mon, d) for d in range(1, calendar.monthrange(year, mon)[1] + 1)]
    out.storm_day = days[11] if storm else None
    for day in days:
        n = per_day * (2.2 if day == out.storm_day else 0.55 if day.weekday() >= 5 else 1.0)
        for _ in range(round(n * rng.uniform(0.9, 1.1))):
            kind, query, template = _pick(rng, inside, popularity, missing, day == out.storm_day,
                                          articles)
            hits = searched.get(template)
            if hits is None:
                hits = searched[template] = kb.search(template, k=5)
            hour = rng.choices(range(24), HOURLY)[0]
            moment = datetime(day.year, day.month, day.day, hour, rng.randrange(60),
                              rng.randrange(10, 60), tzinfo=ZONE)
            ts = moment.timestamp()
            agent = rng.choice(AGENTS)
            out.typed += _keystrokes(rng, log, query, hits, agent, ts)
            qid = log.log_search(query, hits, agent=agent, at=ts)
            _agent_actions(rng, log, qid, hits, agent, ts, bad, out, kind)
            out.raw_queries.append(query)
            out.query_ids.append(qid)
            out.by_day[day.isoformat()] += 1
            out.by_hour[hour] += 1
            out.kinds[kind] += 1
            if kind == "personal":
                out.personal.append(query)
        log.flush()
    return out


def _popularity(rng, inside, articles, season) -> list[float]:
    ranks = list(range(len(inside)))
    rng.shuffle(ranks)
    return [season.get(_category(r, articles), 1.0) / (rank + 1) ** 0.8
            for r, rank in zip(inside, ranks)]


def _category(row: dict, articles: dict) -> str:
    return next((articles[i]["category"] for i in row["expected"] if i in articles), "")


def _pick(rng, inside, popularity, missing, storm_day, articles) -> tuple[str, str, str]:
    """(kind, the query as typed, the query searched for its hits)."""
    roll = rng.random()
    if storm_day and roll < 0.45:
        outage = [r for r in inside if _category(r, articles) in ("停电信息", "故障报修")]
        if outage:
            q = rng.choice(outage)["query"]
            return "in_scope", _decorate(rng, q), q
    if roll < 0.07:
        template = rng.choice(PERSONAL)
        return "personal", template.format(**_numbers(rng)), template.format(**_PLACEHOLDER)
    if roll < 0.13:
        q = rng.choice(rng.choice(list(OUT_OF_SCOPE.values())))
        return "out_of_scope", _decorate(rng, q), q
    if roll < 0.16:
        q = rng.choice(UNCOVERED["需求响应"])
        return "uncovered", _decorate(rng, q), q
    if roll < 0.22 and missing:
        q = rng.choice(missing)["query"]
        return "missing_article", q, q
    q = rng.choices(inside, popularity)[0]["query"]
    return "in_scope", _decorate(rng, q), q


def _keystrokes(rng, log, query: str, hits, agent: str, ts: float) -> int:
    """The page searches as the agent types: log a few half-typed versions first. (Their hits
    are the whole question's: the report drops them, so only their text and timing matter.)"""
    if len(query) < 4 or rng.random() < 0.6:
        return 0
    cuts = sorted(rng.sample(range(2, len(query)), min(3, len(query) - 2)))
    for n, cut in enumerate(cuts):
        log.log_search(query[:cut], hits, agent=agent, at=ts - 1.5 * (len(cuts) - n))
    return len(cuts)


def _decorate(rng, query: str) -> str:
    return rng.choice(DECORATIONS).format(query) if rng.random() < 0.35 else query


def _numbers(rng) -> dict[str, str]:
    def digits(n):
        return "".join(str(rng.randrange(10)) for _ in range(n))

    phone = f"1{rng.choice('3456789')}{digits(9)}"
    sep = rng.choice(["", " ", "-"])
    birth = date(1950, 1, 1) + timedelta(days=rng.randrange(20000))
    acct = digits(rng.choice([10, 11, 12, 13]))
    return {
        "phone": f"{phone[:3]}{sep}{phone[3:7]}{sep}{phone[7:]}",
        "id": f"{rng.randrange(110000, 659999)}{birth:%Y%m%d}{digits(3)}{rng.choice('0123456789X')}",
        "card": "62" + digits(rng.choice([14, 15, 17])),
        "acct": acct,
        "acct_spaced": " ".join(re.findall(r".{1,4}", acct)),
        "landline": f"0{rng.choice(['10', '21', '571', '471'])}-{digits(8)}",
        "email": f"user{digits(4)}@example.com",
        "short": digits(6),
    }


_PLACEHOLDER = {"phone": "13800000000", "id": "110101199001011234", "card": "6222000000000000",
                "acct": "3300000000", "acct_spaced": "3300 0000 00", "landline": "010-12345678",
                "email": "a@example.com", "short": "123456"}


def _agent_actions(rng, log, qid, hits, agent, ts, bad, out, kind) -> None:
    if not hits:
        return
    confident = hits[0].confident
    chance = 0.7 if confident else 0.35 if kind in ("in_scope", "personal") else 0.05
    if rng.random() < chance:
        pick = hits[0] if confident or rng.random() < 0.6 else rng.choice(hits[:3])
        log.log_event(qid, pick.id, "opened", agent, at=ts + 5)
        if rng.random() < 0.45:
            log.log_event(qid, pick.id, "copied", agent, at=ts + 20)
        shown = pick.id
    else:
        shown = hits[0].id
    verdict_chance = 0.5 if shown in bad else 0.06
    if rng.random() < verdict_chance:
        useful = shown not in bad and rng.random() < 0.85
        comment = None
        if not useful:
            comment = rng.choice(["话术太长，客户听不完", "答复和问题不对应",
                                  "客户13912345678反映这个说法不准确", "依据过期了", None])
            out.negative[shown] += 1
        log.log_feedback(qid, shown, useful, comment, agent, at=ts + 40)


def main(argv: list[str]) -> None:
    """Index a content folder, log a generated month and the one before, write the report."""
    import argparse
    import tempfile

    from kb.knowledge_base import KnowledgeBase
    from kb.querylog import LogSettings, QueryLog
    from kb.report import build_report
    from kb.report_render import render

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--content", type=Path, default=ROOT / "content")
    parser.add_argument("--month", default="2025-07")
    parser.add_argument("--per-day", type=int, default=300)
    parser.add_argument("--data", type=Path, default=None, help="reuse an index folder")
    parser.add_argument("--out", type=Path, default=ROOT / "test-artifacts")
    args = parser.parse_args(argv)
    data = args.data or Path(tempfile.mkdtemp(prefix="kb-logsim-"))
    kb = KnowledgeBase(args.content, data)
    kb.reindex()
    path = data / "querylog-sim.sqlite"
    path.unlink(missing_ok=True)
    log = QueryLog(LogSettings(path))
    year, mon = map(int, args.month.split("-"))
    before = f"{year - (mon == 1)}-{(mon - 2) % 12 + 1:02d}"
    cache: dict = {}
    simulate_month(log, kb, before, per_day=args.per_day, season={"电价政策": 1.6}, storm=False,
                   searched=cache)
    generated = simulate_month(log, kb, args.month, per_day=args.per_day, searched=cache)
    log.close()
    report = build_report(path, args.month, kb.articles(), kb.embedder)
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"report-{args.month}.html"
    target.write_text(render(report, "html"), encoding="utf-8")
    (args.out / f"report-{args.month}.md").write_text(render(report, "md"), encoding="utf-8")
    print(f"{sum(generated.by_day.values())} searches logged; {dict(generated.kinds)}")
    print(f"wrote {target}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main(sys.argv[1:])
