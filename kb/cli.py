"""The `kb` command: a thin layer over KnowledgeBase. Exit codes: 0 ok, 1 content problems
found (lint), 2 bad usage, 3 the knowledge base refused (no index, unknown id, bad query...)."""

import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import click

from kb.config import Settings
from kb.errors import KBError
from kb.knowledge_base import KnowledgeBase

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


@click.group(cls=KBGroup)
@click.pass_context
def cli(ctx):
    """95598 knowledge base: index articles, search standard answers, check content.

    Settings come from KB_* environment variables (KB_CONTENT_DIR, KB_DATA_DIR, KB_EMBEDDER).
    """
    ctx.obj = Settings()


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

        report = kb.reindex(full=full, progress=progress)
    for error in report.errors:
        click.echo(f"skipped {error}", err=True)
    click.echo(
        f"indexed {len(report.added) + len(report.changed) + report.unchanged} articles "
        f"({len(report.added)} new, {len(report.changed)} changed, {len(report.removed)} removed, "
        f"{report.unchanged} unchanged); embedded {report.embedded} texts; "
        f"{len(report.errors)} broken files skipped; snapshot {report.snapshot}"
    )


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
            "answer": h.article["answer"]} for h in hits]
        click.echo(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    if not hits:
        click.echo("no results")
    for n, h in enumerate(hits, start=1):
        mark = "confident" if h.confident else "uncertain"
        click.echo(f"{n}. {h.id}  {h.title}  [{h.category}]")
        click.echo(f"   score {h.score:.3f} (dense {h.dense:.3f}, lexical {h.lexical:.3f}) {mark}")
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
@click.pass_obj
def lint(settings):
    """Check the content folder; exit 1 if any error is found.

    Example: kb lint
    """
    from kb.lint import lint_folder

    problems = lint_folder(settings.content_dir)
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
@click.argument("queries", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary as the last line.")
@click.option("--misses", default=20, show_default=True, help="How many misses to list.")
@click.pass_obj
def eval_(settings, queries, as_json, misses):
    """Evaluate search on labelled queries (JSONL: {"query", "expected": [ids]}).

    Example: kb eval content/_eval/queries.jsonl
    """
    from kb.evaluate import evaluate, read_queries

    kb = open_kb(settings)
    category = {a["id"]: a["category"] for a in kb.articles()}
    report = evaluate(lambda q: kb.search(q, k=10), read_queries(queries), category.get)
    click.echo("per category (R@1 / MRR@10 / n):")
    for cat, m in report.by_category.items():
        click.echo(f"  {cat}: {m['recall_at_1']} / {m['mrr_at_10']} / {m['queries']}")
    for miss in report.misses[:misses]:
        click.echo(f"  miss: {miss['query']} -> {miss['got'][:1]} (want {miss['expected']}, "
                   f"rank {miss['rank']})")
    _print_report(report, as_json)


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
@click.option("--host", default=None, help="Default KB_HOST (127.0.0.1).")
@click.option("--port", default=None, type=int, help="Default KB_PORT (8000).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.pass_obj
def serve(settings, host, port, workers):
    """Serve the API and the agents' page.

    Example: kb serve --port 8000
    """
    import uvicorn

    uvicorn.run("server.app:create_app", factory=True, host=host or settings.host,
                port=port or settings.port, workers=workers, log_level="info")


def main():
    cli(prog_name="kb")
