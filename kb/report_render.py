"""The monthly report as one self-contained HTML page (charts inline as SVG images) or as
Markdown. Everything from the log is escaped: queries and comments are what agents typed."""

from datetime import date
from html import escape

from kb import charts
from kb.report import CHOSEN_SHARE, TOP_NEGATIVE, TOP_THEMES, Report, TopicRow

TITLE = "95598 知识库服务诊断月报"
CSS = """
body{font-family:'WenQuanYi Micro Hei','Noto Sans CJK SC','Microsoft YaHei','PingFang SC',
sans-serif;color:#1f2933;margin:0;background:#f5f6f8;line-height:1.55}
main{max-width:960px;margin:0 auto;padding:24px 28px 48px;background:#fff}
h1{font-size:26px;margin:0 0 4px}h2{font-size:20px;margin:34px 0 10px;padding-bottom:6px;
border-bottom:2px solid #2563eb}h3{font-size:15px;margin:18px 0 6px}
.sub,.note{color:#6b7280;font-size:13px}.note{margin:6px 0 10px}
.kpis{display:grid;grid-template-columns:repeat(4,1fr);gap:10px;margin:18px 0}
.kpi{border:1px solid #e5e7eb;border-radius:8px;padding:10px 12px}
.kpi b{display:block;font-size:22px}.kpi span{color:#6b7280;font-size:13px}
table{border-collapse:collapse;width:100%;font-size:13.5px;margin:6px 0}
th,td{border-bottom:1px solid #e5e7eb;padding:6px 8px;text-align:left;vertical-align:top}
th{background:#f3f4f6;font-weight:600}td.n,th.n{text-align:right;white-space:nowrap}
.up{color:#b91c1c}.down{color:#047857}img{max-width:100%;display:block}
.theme{border:1px solid #e5e7eb;border-left:4px solid #f59e0b;border-radius:6px;
padding:8px 12px;margin:10px 0}.theme h3{margin:0 0 4px}.theme ul{margin:4px 0;padding-left:20px}
.todo{color:#92400e;font-weight:600}.muted{color:#6b7280}.id{color:#6b7280;font-size:12px}
.cats{columns:2;font-size:13.5px}.cats p{margin:0 0 8px;break-inside:avoid}
th.q{width:30%}
"""


def render(report: Report, kind: str = "html") -> str:
    """The report as 'html' or 'md'."""
    if kind == "html":
        return render_html(report)
    if kind == "md":
        return render_markdown(report)
    raise ValueError(f"report format must be html or md, not '{kind}'")


def _pct(x: float) -> str:
    return f"{x:.0%}"


def _change(row: TopicRow) -> str:
    if row.change is None:
        return "新增" if row.total else "—"
    sign = "+" if row.change > 0 else "−" if row.change < 0 else "±"
    return f"{sign}{abs(row.change):.0%}"


def _month_cn(month: str) -> str:
    year, mon = month.split("-")
    return f"{year}年{int(mon)}月"


def _kpis(r: Report) -> list[tuple[str, str]]:
    change = (f"环比 {(r.searches - r.previous_searches) / r.previous_searches:+.0%}"
              if r.previous_searches else "上月无数据")
    share = _pct(r.confident / r.searches) if r.searches else "—"
    verdicts = r.useful + r.not_useful
    return [
        (f"{r.searches:,}", f"检索次数（{change}）"),
        (f"{r.questions:,}", "不同问题（合并相近问法后）"),
        (share, "有可靠答案的检索占比"),
        (f"{r.agents}", "使用知识库的坐席"),
        (f"{r.opened:,} / {r.copied:,}", "打开答复 / 复制话术"),
        (f"{r.useful} / {r.not_useful}", f"反馈 有用 / 没用（共 {verdicts} 条）"),
        (f"{r.unanswered:,}", "无可靠答案的检索"),
        (f"{r.dropped:,}", "未能记录的检索（日志队列已满）"),
    ]


def render_html(r: Report) -> str:
    out = [f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
           f'<meta name="viewport" content="width=device-width,initial-scale=1">'
           f"<title>{TITLE} {r.month}</title><style>{CSS}</style></head><body><main>",
           f"<h1>{TITLE}</h1><p class='sub'>{_month_cn(r.month)} · 生成于 {r.generated_at}"
           " · 数据：坐席在知识库中的检索、打开、复制与反馈记录"
           "（电话、证件、卡号、户号已脱敏）</p>"]
    if not r.searches:
        out.append(f"<p>{_month_cn(r.month)}没有检索记录。</p></main></body></html>")
        return "".join(out)
    out.append("<div class='kpis'>" + "".join(
        f"<div class='kpi'><b>{escape(v)}</b><span>{escape(k)}</span></div>"
        for v, k in _kpis(r)) + "</div>")
    out += _volume_html(r) + _topics_html(r) + _questions_html(r) + _gaps_html(r)
    out += _feedback_html(r) + _never_found_html(r)
    out.append("<p class='note'>说明：主题按坐席筛选的分类、坐席打开的答复或可靠的首条结果归类；"
               "没有可靠答案的检索按最接近的条目归类（图中浅色部分）。环比与上月同口径比较。</p>"
               "</main></body></html>")
    return "".join(out)


def _img(svg: str, alt: str) -> str:
    return f'<img src="{charts.data_uri(svg)}" alt="{escape(alt)}">'


def _volume_html(r: Report) -> list[str]:
    days = [date.fromisoformat(d) for d, _ in r.by_day]
    counts = [n for _, n in r.by_day]
    peak = max(range(len(counts)), key=counts.__getitem__)
    weekend = {i for i, d in enumerate(days) if d.weekday() >= 5}
    day_chart = charts.columns([str(d.day) for d in days], counts, "每日检索量",
                               highlight={peak}, faint=weekend)
    busiest = max(range(24), key=r.by_hour.__getitem__)
    hour_chart = charts.columns([str(h) for h in range(24)], r.by_hour, "各小时检索量",
                                highlight={busiest}, height=220)
    return ["<h2>一、话务量</h2>",
            f"<h3>按日</h3><p class='note'>峰值 {days[peak]:%m月%d日}，{counts[peak]} 次"
            f"（日均 {sum(counts) / len(counts):.0f} 次）；浅色为周末。</p>",
            _img(day_chart, "每日检索量柱状图"),
            f"<h3>按小时</h3><p class='note'>最忙时段 {busiest}:00–{busiest + 1}:00，"
            f"{r.by_hour[busiest]} 次。</p>", _img(hour_chart, "各小时检索量柱状图")]


def _topics_html(r: Report) -> list[str]:
    rows = sorted(r.topics, key=lambda t: -t.total)
    chart = charts.stacked_rows(
        [t.topic for t in rows], [t.answered for t in rows], [t.guessed for t in rows],
        [t.previous for t in rows], "业务主题分布",
        legend=("有可靠答案或坐席已选用", "无可靠答案（按最接近条目）", "上月"))
    body = "".join(
        f"<tr><td>{escape(t.topic)}</td><td class='n'>{t.total}</td>"
        f"<td class='n'>{_pct(t.total / r.searches)}</td><td class='n'>{t.guessed}</td>"
        f"<td class='n'>{t.previous}</td><td class='n {_trend(t)}'>{_change(t)}</td></tr>"
        for t in rows)
    return ["<h2>二、业务主题分布与环比</h2>", _img(chart, "业务主题分布条形图"),
            "<table><tr><th>诊断主题</th><th class='n'>本月</th><th class='n'>占比</th>"
            "<th class='n'>其中无可靠答案</th><th class='n'>上月</th><th class='n'>环比</th></tr>"
            f"{body}</table>"]


def _trend(t: TopicRow) -> str:
    return "" if t.change is None else "up" if t.change > 0.1 else "down" if t.change < -0.1 \
        else ""


def _answer_html(a) -> str:
    return (f"{escape(a.title)} <span class='id'>{escape(a.id)} · {_pct(a.share)}</span>"
            if a else "<span class='muted'>—</span>")


def _questions_html(r: Report) -> list[str]:
    body = "".join(
        f"<tr><td class='n'>{n}</td><td>{escape(q.text)}"
        + (f" <span class='id'>（{q.phrasings} 种问法）</span>" if q.phrasings > 1 else "")
        + f"</td><td class='n'>{q.count}</td><td class='n'>{_pct(q.confident_share)}</td>"
        f"<td>{'<br>'.join(_answer_html(a) for a in q.answers) or '—'}</td>"
        f"<td>{_answer_html(q.chosen)}</td></tr>"
        for n, q in enumerate(r.top_questions, start=1))
    return ["<h2>三、高频问题及答复</h2>",
            "<p class='note'>相近问法（去掉语气词、标点后几乎相同）合并为一个问题；"
            "首条结果后的百分比为该问题检索中排第一的比例，坐席选用为打开或复制最多的答复。</p>",
            "<table><tr><th class='n'>#</th><th class='q'>问题</th><th class='n'>次数</th>"
            "<th class='n'>可靠答案</th><th>首条结果</th><th>坐席选用</th></tr>"
            f"{body}</table>"]


GAP_LISTS = (
    (True, "4.1 知识库没有答案：新增文章，或确认是否属于95598受理范围",
     "坐席很少打开任何答复（不到 {share}），多半是知识库没有这类内容。"),
    (False, "4.2 有答案但检索不可靠：把这些问法补为相似问法",
     "坐席常能找到并打开答复（“→”后为坐席选用最多的文章），说明内容在，但客户的说法没有覆盖。"),
)


def _gaps_html(r: Report) -> list[str]:
    out = ["<h2>四、内容缺口：编辑待办</h2>",
           f"<p class='note'>本月 {r.unanswered} 次检索没有可靠答案；相近的问题归为同一主题，"
           "按次数排序。</p>"]
    for missing, heading, note in GAP_LISTS:
        themes = [t for t in r.themes if t.missing == missing]
        out.append(f"<h3>{heading}</h3><p class='note'>{note.format(share=_pct(CHOSEN_SHARE))}</p>")
        for n, t in enumerate(themes[:TOP_THEMES], start=1):
            examples = "".join(
                f"<li>{escape(e.text)} <span class='id'>×{e.count}</span>"
                + (f" → {_answer_html(e.chosen)}" if e.chosen and not missing else "") + "</li>"
                for e in t.examples)
            out.append(
                f"<div class='theme'><h3>{n}. {escape(t.label)}</h3>"
                f"<div class='muted'>{t.count} 次检索 · {t.questions} 个不同问题 · "
                f"坐席打开答复 {t.choices} 次 · 最接近的条目：{_answer_html(t.nearest)}</div>"
                f"<ul>{examples}</ul></div>")
        rest = themes[TOP_THEMES:]
        if rest:
            out.append(f"<p class='note'>另有 {len(rest)} 个主题（共 "
                       f"{sum(t.count for t in rest)} 次检索）未列出。</p>")
        if not themes:
            out.append("<p>无。</p>")
    return out


def _feedback_html(r: Report) -> list[str]:
    head = "<h2>五、坐席反馈“没用”的文章</h2>"
    if not r.negative:
        return [head, "<p>本月没有“没用”的反馈。</p>"]
    body = "".join(
        f"<tr><td>{escape(v.title)}<br><span class='id'>{escape(v.id)} · "
        f"{escape(v.category)}</span></td><td class='n'>{v.not_useful}</td>"
        f"<td class='n'>{v.useful}</td><td>{'<br>'.join(escape(c) for c in v.comments[:3])}"
        "</td></tr>" for v in r.negative[:TOP_NEGATIVE])
    rest = r.negative[TOP_NEGATIVE:]
    more = (f"<p class='note'>另有 {len(rest)} 篇文章各有 {max(v.not_useful for v in rest)} "
            "次或更少的“没用”反馈，未列出。</p>" if rest else "")
    return [head, "<table><tr><th>文章</th><th class='n'>没用</th><th class='n'>有用</th>"
            f"<th>坐席说明（已脱敏）</th></tr>{body}</table>{more}"]


def _never_found_html(r: Report) -> list[str]:
    head = (f"<h2>六、本月从未被检索到的文章（{len(r.never_found)} 篇）</h2>"
            "<p class='note'>在本月任何一次检索中都没有排进前 3 名：确认是否仍需要，"
            "或补充客户常用的说法。</p>")
    if not r.never_found:
        return [head, "<p>每篇文章本月都至少排进过一次前 3 名。</p>"]
    by_category: dict[str, list[dict]] = {}
    for a in r.never_found:
        by_category.setdefault(a["category"], []).append(a)
    items = "".join(f"<p><b>{escape(c)}</b>（{len(arts)}）<br>" + "<br>".join(
        f"{escape(a['title'])} <span class='id'>{escape(a['id'])}</span>" for a in arts) + "</p>"
        for c, arts in by_category.items())
    return [head, f"<div class='cats'>{items}</div>"]


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(r: Report) -> str:
    out = [f"# {TITLE}（{_month_cn(r.month)}）", "", f"生成于 {r.generated_at}", ""]
    if not r.searches:
        return "\n".join(out + [f"{_month_cn(r.month)}没有检索记录。", ""])
    out += [f"- {k}：{v}" for v, k in _kpis(r)]
    out += ["", "## 一、话务量", "", "| 日期 | 检索 |", "|---|---:|"]
    out += [f"| {d} | {n} |" for d, n in r.by_day]
    out += ["", "| 小时 | 检索 |", "|---|---:|"]
    out += [f"| {h}:00 | {n} |" for h, n in enumerate(r.by_hour)]
    out += ["", "## 二、业务主题分布与环比", "",
            "| 诊断主题 | 本月 | 其中无可靠答案 | 上月 | 环比 |", "|---|---:|---:|---:|---:|"]
    out += [f"| {t.topic} | {t.total} | {t.guessed} | {t.previous} | {_change(t)} |"
            for t in sorted(r.topics, key=lambda t: -t.total)]
    out += ["", "## 三、高频问题及答复", "", "| # | 问题 | 次数 | 可靠答案 | 首条结果 |",
            "|---:|---|---:|---:|---|"]
    out += [f"| {n} | {_md(q.text)} | {q.count} | {_pct(q.confident_share)} | "
            + (f"{_md(q.answers[0].title)} ({q.answers[0].id}) |" if q.answers else "— |")
            for n, q in enumerate(r.top_questions, start=1)]
    out += ["", "## 四、内容缺口：编辑待办", "", f"本月 {r.unanswered} 次检索没有可靠答案。", ""]
    for missing, heading, _ in GAP_LISTS:
        out += [f"### {heading}", ""]
        for n, t in enumerate([t for t in r.themes if t.missing == missing][:TOP_THEMES], 1):
            out.append(f"{n}. **{_md(t.label)}**（{t.count} 次，{t.questions} 个问题）")
            out += [f"   - {_md(e.text)} ×{e.count}"
                    + (f" → {_md(e.chosen.title)} ({e.chosen.id})" if e.chosen and not missing
                       else "") for e in t.examples]
        out.append("")
    out += ["## 五、坐席反馈“没用”的文章", "",
            "| 文章 | 没用 | 有用 | 说明 |", "|---|---:|---:|---|"]
    out += [f"| {_md(v.title)} ({v.id}) | {v.not_useful} | {v.useful} | "
            f"{_md('；'.join(v.comments[:3]))} |" for v in r.negative[:TOP_NEGATIVE]]
    out += ["", f"## 六、本月从未被检索到的文章（{len(r.never_found)} 篇）", ""]
    out += [f"- {a['category']}：{_md(a['title'])} ({a['id']})" for a in r.never_found]
    return "\n".join(out) + "\n"
