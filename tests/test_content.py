"""The shipped knowledge base itself: every article parses and lints clean, and the eval set
asks only about articles that exist. (Its ranking is measured by `kb eval`, not asserted here:
that needs the model over every article.)"""

import json
from pathlib import Path

from click.testing import CliRunner

from kb.article import load_folder
from kb.cli import cli

CONTENT = Path(__file__).parent.parent / "content"


def test_shipped_content_lints_clean(tmp_path, monkeypatch):
    monkeypatch.setenv("KB_CONTENT_DIR", str(CONTENT))
    monkeypatch.setenv("KB_DATA_DIR", str(tmp_path / "data"))
    result = CliRunner().invoke(cli, ["lint"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "0 errors" in result.output


def test_shipped_eval_queries_name_real_articles():
    articles, errors = load_folder(CONTENT)
    assert not errors and len(articles) >= 150
    ids = {a.id for a in articles}
    questions = {q for a in articles for q in (a.title, *a.similar)}
    rows = [json.loads(line) for line in
            (CONTENT / "_eval" / "queries.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()]
    assert len(rows) >= 300
    unknown = [r for r in rows if not set(r["expected"]) <= ids]
    assert unknown == []
    # An eval query copied from an article's own questions would measure nothing.
    assert [r["query"] for r in rows if r["query"] in questions] == []
