"""The `kb` command: a thin layer over KnowledgeBase. Exit codes: 0 ok, 1 content problems
found (lint), 2 bad usage, 3 the knowledge base refused (no index, unknown id, bad query...)."""

import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import click

from indexer.finetune import EPOCHS, MAX_PAIRS
from kb.config import Settings
from kb.errors import ConfigError, KBError
from kb.knowledge_base import KnowledgeBase, report_errors

EXIT_PROBLEMS, EXIT_KB = 1, 3


def open_kb(settings: Settings, **overrides) -> KnowledgeBase:
    return KnowledgeBase(
        overrides.get("content_dir", settings.content_dir),
        overrides.get("data_dir", settings.data_dir),
        settings.embedder,
        to_simplified=settings.traditional_to_simplified,
        max_query_chars=settings.max_query_chars,
    )


class KBGroup(click.Group):
    """Turns the knowledge base's named errors into one line and exit code 3."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KBError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_KB)
        except OSError as exc:  # a read-only or full disk: the file and the reason, no traceback
            click.echo(f"error: {exc}: check that KB_DATA_DIR is writable and has space",
                       err=True)
            sys.exit(EXIT_KB)


@click.group(cls=KBGroup)
@click.pass_context
def cli(ctx):
    """95598 knowledge base: index articles, search standard answers, check content.

    Settings come from KB_* environment variables (KB_CONTENT_DIR, KB_DATA_DIR, KB_EMBEDDER).
    """
    try:
        ctx.obj = Settings()
    except ValueError as exc:  # pydantic's ValidationError: one line per bad KB_* variable
        problems = [f"KB_{'_'.join(map(str, e['loc'])).upper()}={e.get('input')!r}: {e['msg']}"
                    for e in getattr(exc, "errors", lambda: [])()] or [str(exc)]
        raise ConfigError("bad setting: " + "; ".join(problems)) from None


@cli.command()
@click.option("--full", is_flag=True, help="Re-embed everything instead of reusing the cache.")
@click.pass_obj
def index(settings, full):
    """Index the content folder (incremental: only new or changed text is embedded).

    Example: kb index
    """
    kb = open_kb(settings)
    with click.progressbar(length=1, label="embedding", file=sys.stderr) as bar:
        def progress(done, total):
            bar.length = max(total, 1)
            bar.update(done - bar.pos)

        report = kb.reindex(full=full, progress=progress, waiting=lambda: click.echo(
            "\nwaiting for another build of this index (a kb index, or kb serve indexing an "
            "edit) to finish", err=True))
    for line in report_errors(report):
        click.echo(line, err=True)
    click.echo(
        f"indexed {len(report.added) + len(report.changed) + report.unchanged} articles "
        f"({len(report.added)} new, {len(report.changed)} changed, {len(report.removed)} removed, "
        f"{report.unchanged} unchanged); embedded {report.embedded} texts; "
        f"{len(report.errors)} broken files skipped"
        + (f" ({len(report.kept)} served as they last were)" if report.kept else "")
        + f"; snapshot {report.snapshot}"
    )


@cli.command()
@click.option("--epochs", default=EPOCHS, show_default=True, type=click.IntRange(1, 10),
              help="Passes over the pairs.")
@click.option("--max-pairs", default=MAX_PAIRS, show_default=True, type=click.IntRange(32),
              help="Pairs per pass, drawn at random: caps the time on a large knowledge base.")
@click.option("--compare", is_flag=True,
              help="Then measure content/_eval/ on the live index (brought up to date first, as "
                   "kb index does) and on a scratch index built with the tuned copy, and say "
                   "whether to switch.")
@click.pass_obj
def tune(settings, epochs, max_pairs, compare):
    """Tune the default model (e5) on this knowledge base's own questions and answers.

    Writes a tuned copy of the model to KB_DATA_DIR/models/ and prints the setting that serves
    it. Needs torch (pip install 'kb95598[st]'). Minutes on two cores; run it again when the
    articles change a lot. The index changes only once KB_EMBEDDER names the file. Older
    copies in models/ are removed, except the three newest and those this KB_DATA_DIR's live
    index or this shell's KB_EMBEDDER needs.

    Example: kb tune --compare, then KB_EMBEDDER=e5:data/models/e5-tuned-<id>.bin kb index
    """
    kb = open_kb(settings)
    rows = _compare_rows(settings, kb) if compare else []  # before minutes of tuning
    with click.progressbar(length=1, label="tuning", file=sys.stderr) as bar:
        def progress(done, total):
            bar.length = max(total, 1)
            bar.update(done - bar.pos)

        report = kb.tune(epochs, max_pairs, progress)
    for error in report.errors:
        click.echo(f"skipped {error}", err=True)
    for old in report.removed:
        why = ("left half-written by a killed kb tune" if old.suffix == ".part"
               else "an older tuned copy nothing needs")
        click.echo(f"removed {old.name}: {why}")
    t = report.tuned
    click.echo(
        f"tuned on {t.pairs} pairs from {t.articles} articles ({len(report.errors)} broken "
        f"files skipped), {t.epochs} epoch(s) in {t.seconds:.0f} s, loss {t.loss:.3f}\n"
        f"wrote {report.path}\n"
        f"to serve it: set KB_EMBEDDER=e5:{report.path} for kb index and kb serve, and restart "
        "the server (a server still on the old model rebuilds with the old one on the next edit)"
    )
    if compare:
        from kb.tuning import compare as compare_tuned

        click.echo("indexing with the tuned copy in a scratch folder ...", err=True)
        c = compare_tuned(kb, report.path, rows)
        click.echo(f"on {len(rows)} labelled queries (R@1 / MRR@10 / confident share at "
                   "precision):")
        for name, r in (("live index", c.live), (f"tuned copy ({c.tuned_model})", c.tuned)):
            click.echo(f"  {name}: {r.recall_at_1:.3f} / {r.mrr_at_10:.3f} / "
                       f"{r.confident_share:.3f} at {r.confident_precision:.3f}")
        click.echo(c.reason)


def _compare_rows(settings, kb: KnowledgeBase) -> list[dict]:
    """The labelled queries `kb tune --compare` measures on, read before the tuning starts;
    refuses when there are none, or no live index to compare with."""
    from kb.evaluate import eval_sets, read_queries

    rows = [row for path in eval_sets(settings.content_dir) for row in read_queries(path)]
    if not rows:
        raise click.UsageError(f"--compare needs labelled queries in "
                               f"{settings.content_dir / '_eval'} (queries.jsonl, or hit "
                               "tests saved from /editor)")
    kb.searcher()  # a live index, built with the configured model
    return rows


@cli.command()
@click.argument("query")
@click.option("--k", default=5, show_default=True, type=click.IntRange(1, 50))
@click.option("--category", default=None, help="Only articles of this category.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a list.")
@click.pass_obj
def search(settings, query, k, category, as_json):
    """Search standard answers.

    Example: kb search "家里突然没电了" --k 3
    """
    hits = open_kb(settings).search(query, k=k, category=category)
    if as_json:
        rows = [{k: v for k, v in asdict(h).items() if k != "article"} | {
            "answer": h.article["answer"], "answer_html": h.article["answer_html"]} for h in hits]
        click.echo(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    if not hits:
        click.echo("no results")
    for n, h in enumerate(hits, start=1):
        mark = "confident" if h.confident else "uncertain"
        click.echo(f"{n}. {h.id}  {h.title}  [{h.category}]")
        parts = " + ".join(f"{share:.2f}×{name} {value:.3f}"
                           for name, (share, value) in h.parts.items())
        click.echo(f"   score {h.score:.3f} = {parts}  {mark}")
        click.echo(f"   matched {h.matched_kind}: {h.matched_text[:60]}")


@cli.command()
@click.argument("article_id")
@click.pass_obj
def show(settings, article_id):
    """Show one article as indexed.

    Example: kb show repair-home-outage
    """
    a = open_kb(settings).get(article_id)
    click.echo(f"{a['id']}  {a['title']}  [{a['category']}]  {a['path']}")
    if a["similar"]:
        click.echo("相似问法: " + " | ".join(a["similar"]))
    click.echo("")
    click.echo(a["answer"])
    if a["basis"]:
        click.echo("\n## 依据\n" + a["basis"])


@cli.command()
@click.option("--deep", is_flag=True,
              help="Also find near-duplicate questions of different articles with the model.")
@click.option("--threshold", default=None, type=click.FloatRange(0, 1),
              help="Cosine from which --deep calls two questions duplicates (default 0.97).")
@click.pass_obj
def lint(settings, deep, threshold):
    """Check the content folder; exit 1 if any error is found.

    Example: kb lint --deep
    """
    from kb.article import load_folder
    from kb.lint import NEAR_DUPLICATE, lint_folder, near_duplicates

    problems = lint_folder(settings.content_dir)
    if deep:
        articles, _ = load_folder(settings.content_dir)
        problems += near_duplicates(articles, open_kb(settings).embed_questions,
                                    NEAR_DUPLICATE if threshold is None else threshold)
    for p in problems:
        click.echo(str(p))
    errors = [p for p in problems if p.severity == "error"]
    click.echo(f"{len(errors)} errors, {len(problems) - len(errors)} warnings")
    if errors:
        sys.exit(EXIT_PROBLEMS)


@cli.command()
@click.pass_obj
def stats(settings):
    """Counts of the live index: articles, passages, categories, embedder.

    Example: kb stats
    """
    s = open_kb(settings).stats()
    for key in ("snapshot", "embedder", "articles", "passages", "vector_index", "built_at"):
        click.echo(f"{key}: {s[key]}")
    for category, count in sorted(s["categories"].items(), key=lambda kv: -kv[1]):
        click.echo(f"  {category}: {count}")


def _print_report(report, as_json: bool, extra: dict | None = None) -> None:
    rows = [("R@1", report.recall_at_1), ("R@3", report.recall_at_3),
            ("R@10", report.recall_at_10), ("MRR@10", report.mrr_at_10),
            ("query ms p50", report.query_ms_p50), ("confident share", report.confident_share),
            ("confident precision", report.confident_precision)]
    click.echo(f"queries: {report.queries}")
    for name, value in rows:
        click.echo(f"{name:>20}: {value}")
    if as_json:
        click.echo(json.dumps(report.summary() | (extra or {}), ensure_ascii=False))


@cli.command("eval")
@click.argument("queries", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary as the last line.")
@click.option("--misses", default=20, show_default=True, help="How many misses to list.")
@click.pass_obj
def eval_(settings, queries, as_json, misses):
    """Evaluate search on labelled queries (JSONL: {"query", "expected": [ids]}). Without a
    file, every eval set in content/_eval/: queries.jsonl and the hit tests editors saved.

    Example: kb eval          (one set: kb eval content/_eval/saved.jsonl --json)
    """
    from kb.evaluate import eval_sets, evaluate, read_queries

    files = list(queries) or eval_sets(settings.content_dir)
    if not files:
        raise click.UsageError(f"no eval sets in {settings.content_dir / '_eval'}: give a "
                               "queries file, or save a hit-test query from /editor")
    rows = [row | {"set": str(path)} for path in files for row in read_queries(path)]
    kb = open_kb(settings)
    category = {a["id"]: a["category"] for a in kb.articles()}
    report = evaluate(lambda q: kb.search(q, k=10), rows, category.get)
    click.echo("per category (R@1 / MRR@10 / n):")
    for cat, m in report.by_category.items():
        click.echo(f"  {cat}: {m['recall_at_1']} / {m['mrr_at_10']} / {m['queries']}")
    click.echo("per set (R@1 / MRR@10 / n):")
    for name, m in report.by_set.items():
        click.echo(f"  {name}: {m['recall_at_1']} / {m['mrr_at_10']} / {m['queries']}")
    for miss in report.misses[:misses]:
        click.echo(f"  miss: {miss['query']} -> {miss['got'][:1]} (want {miss['expected']}, "
                   f"rank {miss['rank']})")
    _print_report(report, as_json, {"sets": report.by_set})


@cli.command("import")
@click.argument("sheet", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check and report, write nothing.")
@click.pass_obj
def import_(settings, sheet, dry_run):
    """Import a question-answer sheet (CSV, XLSX or JSONL) as Markdown articles.

    Columns: 标准问题, 答案, and optionally 相似问题 (several separated by new lines or '|'),
    分类, 标签, 依据, id, 生效日期, 失效日期. JSONL lines may also be {"id", "question",
    "answer", "category", "similar"}. A question already in content/ is skipped; any bad row
    refuses the whole sheet and nothing is written (exit 1).

    Example: kb import faq.xlsx --dry-run
    """
    from kb.errors import SheetError
    from kb.importer import import_sheet

    try:
        plan = import_sheet(sheet, settings.content_dir, dry_run=dry_run)
    except SheetError as exc:
        click.echo(f"refused: {exc}", err=True)
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(EXIT_PROBLEMS)
    verb = "would create" if dry_run else "created"
    for column in plan.ignored_columns:
        click.echo(f"ignored column '{column}'")
    for a in plan.created:
        click.echo(f"{verb} {a.id}  {a.title}  ({a.path})")
    for number, reason in plan.skipped:
        click.echo(f"skipped row {number}: {reason}")
    click.echo(f"{len(plan.created)} {verb}, {len(plan.skipped)} skipped"
               + ("; nothing written (dry run)" if dry_run else
                  "; run `kb index` (a running `kb serve` picks them up by itself)"))


@cli.command()
@click.option("--format", "kind", type=click.Choice(["xlsx", "csv"]), default="xlsx",
              show_default=True)
@click.option("--out", default=None,
              help="File to write (default kb-export.xlsx or kb-export.csv; '-' for stdout).")
@click.pass_obj
def export(settings, kind, out):
    """Export every article to a sheet for offline review; `kb import` reads it back.

    Example: kb export --format csv --out review.csv
    """
    from kb.importer import export_rows, write_export

    rows = export_rows(settings.content_dir)
    if out == "-" and kind == "xlsx":
        raise click.UsageError("an XLSX workbook cannot go to stdout: give --out FILE")
    target = sys.stdout if out == "-" else out or f"kb-export.{kind}"
    try:
        write_export(rows, target, kind)
    except OSError as exc:
        raise ConfigError(f"cannot write {target}: {exc.strerror}") from None
    if out != "-":
        click.echo(f"exported {len(rows) - 1} articles to {target}")


@cli.group()
def bench():
    """Benchmarks on outside data."""


@bench.command("faq")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary as the last line.")
@click.pass_obj
def bench_faq(settings, folder, as_json):
    """Build a throw-away KB from FOLDER (kb.jsonl + queries.jsonl), index it and evaluate.

    Example: kb bench faq ../shared/bench/unionpay-dev --json
    """
    from kb.evaluate import evaluate
    from kb.faqbench import faq_articles, faq_queries, write_content

    articles = faq_articles(folder / "kb.jsonl")
    queries = faq_queries(folder / "queries.jsonl")
    with tempfile.TemporaryDirectory(prefix="kb-bench-") as tmp:
        write_content(articles, Path(tmp) / "content")
        kb = open_kb(settings, content_dir=Path(tmp) / "content", data_dir=Path(tmp) / "data")
        kb.reindex()
        report = evaluate(lambda q: kb.search(q, k=10), queries)
    _print_report(report, as_json, {"articles": len(articles)})


@cli.command()
@click.option("--month", default=None, help="YYYY-MM  [default: last month]")
@click.option("--format", "kind", type=click.Choice(["html", "md"]), default="html",
              show_default=True)
@click.option("--out", default=None,
              help="File to write (default report-YYYY-MM.html or .md; '-' for stdout).")
@click.pass_obj
def report(settings, month, kind, out):
    """The monthly service-diagnosis report from the query log `kb serve` keeps: volume by day,
    hour and topic, frequent questions, content gaps, negative feedback, articles never found.

    Example: kb report --month 2025-07 --out report-2025-07.html
    """
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from kb.querylog import LOG_FILE
    from kb.report import MONTH_RE, build_report, open_log, previous_month
    from kb.report_render import render

    month = month or previous_month(datetime.now(ZoneInfo(settings.timezone)).strftime("%Y-%m"))
    if not MONTH_RE.match(month):
        raise click.BadParameter(f"'{month}' is not a month: use YYYY-MM, e.g. 2025-07",
                                 param_hint="--month")
    with open_log(settings.data_dir / LOG_FILE):  # no log: say so before loading the index
        pass
    kb = open_kb(settings)
    built = build_report(settings.data_dir / LOG_FILE, month, kb.articles(), kb.embedder,
                         settings.timezone)
    text = render(built, kind)
    if out == "-":
        click.echo(text, nl=False)
        return
    target = Path(out or f"report-{month}.{kind}")
    target.write_text(text, encoding="utf-8")
    gaps = sum(t.missing for t in built.themes)
    if not built.searches:  # "168 never found" would blame every article for an empty log
        click.echo(f"report {month}: no searches were logged that month; wrote {target}")
        return
    click.echo(f"report {month}: {built.searches} searches, {built.unanswered} without a "
               f"confident answer, {gaps} gap themes, {len(built.negative)} articles rated "
               f"not useful, {len(built.never_found)} never found; wrote {target}")


@cli.command()
@click.option("--host", default=None, help="Default KB_HOST (127.0.0.1).")
@click.option("--port", default=None, type=int, help="Default KB_PORT (8000).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--watch/--no-watch", default=True, show_default=True,
              help="Reindex when files under content/ change. Either way, files changed "
                   "while no server ran are indexed at start.")
@click.pass_obj
def serve(settings, host, port, workers, watch):
    """Serve the API, the agents' page and the editors' page (/editor).

    Example: kb serve --port 8000
    """
    import copy
    import os

    import uvicorn

    from server.tuning import UVICORN_OPTIONS

    os.environ["KB_WATCH"] = "true" if watch else "false"  # read by each worker's Settings

    # uvicorn configures only its own loggers: without this, what the content watcher says
    # (an article reindexed, a broken file kept at its last version) reached nobody.
    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    log_config["loggers"]["kb"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    uvicorn.run("server.app:create_app", factory=True, host=host or settings.host,
                port=port or settings.port, workers=workers, log_level="info",
                log_config=log_config, **UVICORN_OPTIONS)


def main():
    cli(prog_name="kb")
