"""`kb import` and `kb export` on real CSV, XLSX and JSONL files made here (openpyxl), and the
deeper `kb lint --deep` check."""

import csv
import json
import zipfile

import pytest
from click.testing import CliRunner
from openpyxl import Workbook, load_workbook

from kb.article import load_file, load_folder
from kb.cli import cli
from kb.errors import SheetError
from kb.importer import MAX_BYTES, export_rows, import_sheet, new_id, write_export
from kb.lint import near_duplicates

HEADER = ["标准问题", "相似问题", "答案", "分类", "标签"]
ROWS = [
    ["电表箱门坏了找谁修", "表箱的门掉下来了\n电表箱锁坏了怎么办", "您好，我为您登记报修。", "故障报修", "表箱, 报修"],
    ["光伏发电怎么并网", "家里装光伏要申请吗|屋顶光伏怎么接入电网", "您好，请携带身份证和房产证明到营业厅申请。", "新装增容", "光伏"],
]


@pytest.fixture
def run(content, tmp_path, monkeypatch):
    monkeypatch.setenv("KB_CONTENT_DIR", str(content))
    monkeypatch.setenv("KB_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    return lambda *args: runner.invoke(cli, list(args), catch_exceptions=False)


def write_csv(path, rows, header=HEADER, encoding="utf-8-sig"):
    with open(path, "w", encoding=encoding, newline="") as fh:
        csv.writer(fh).writerows([header, *rows])
    return path


def write_xlsx(path, rows, header=HEADER):
    workbook = Workbook()
    sheet = workbook.active
    for row in [header, *rows]:
        sheet.append(row)
    workbook.save(path)
    return path


def files_of(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# Importing.


def test_csv_import_writes_articles_in_their_categorys_folder(run, content, tmp_path):
    sheet = write_csv(tmp_path / "faq.csv", ROWS)
    result = run("import", str(sheet))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1].startswith("2 created, 0 skipped; run `kb index`")
    first = load_file(content / "repair" / f"{new_id('电表箱门坏了找谁修')}.md")
    assert first.title == "电表箱门坏了找谁修" and first.category == "故障报修"
    assert first.similar == ("表箱的门掉下来了", "电表箱锁坏了怎么办")
    assert first.tags == ("表箱", "报修") and first.answer == "您好，我为您登记报修。"
    second = load_file(content / "imported" / f"{new_id('光伏发电怎么并网')}.md")
    assert second.similar == ("家里装光伏要申请吗", "屋顶光伏怎么接入电网")
    again = run("import", str(sheet))  # a sheet imported twice: every question is there
    assert again.exit_code == 0 and "0 created, 2 skipped" in again.output
    assert f"skipped row 2: '电表箱门坏了找谁修' is already the title of '{first.id}'" in again.output


def test_xlsx_import(content, tmp_path):
    sheet = write_xlsx(tmp_path / "faq.xlsx", [*ROWS, [None, None, None, None, None],
                                               ["峰谷电价怎么申请", None, "您好，可通过网上国网申请。", None, None]])
    plan = import_sheet(sheet, content)
    assert [a.title for a in plan.created] == ["电表箱门坏了找谁修", "光伏发电怎么并网", "峰谷电价怎么申请"]
    third = load_file(plan.created[2].path)
    assert third.category == "未分类" and third.similar == ()


def test_the_imported_articles_are_found_by_search(kb, tmp_path):
    import_sheet(write_xlsx(tmp_path / "faq.xlsx", ROWS), kb.content_dir)
    kb.reindex()
    assert kb.search("电表箱锁坏了怎么办")[0].title == "电表箱门坏了找谁修"


def test_dry_run_writes_nothing(run, content, tmp_path):
    before = files_of(content)
    result = run("import", str(write_xlsx(tmp_path / "faq.xlsx", ROWS)), "--dry-run")
    assert result.exit_code == 0
    assert "would create" in result.output and "2 would create, 0 skipped; nothing written (dry run)" in result.output
    assert files_of(content) == before


def test_the_benchmark_jsonl_shape_is_read(content, tmp_path):
    sheet = tmp_path / "kb.jsonl"
    sheet.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"id": "jining_2", "question": "如何办理儒商卡", "answer": "持本人身份证到网点办理。",
         "category": "儒商卡", "similar": ["儒商卡怎么办", "如何办理儒商卡"]},
        {"id": "jining_3", "question": "儒商卡是否可以代办", "answer": 101000, "category": "儒商卡",
         "similar": []},
    ]) + "\n", "utf-8")
    plan = import_sheet(sheet, content)
    assert [a.id for a in plan.created] == ["jining-2", "jining-3"]
    assert plan.created[0].similar == ("儒商卡怎么办",)  # its own question is not a similar one
    assert plan.created[1].answer == "101000"


@pytest.mark.parametrize("row,words", [
    ({"question": "如何办理儒商卡", "answer": {"a": 1}}, "'answer' must be text"),
    ({"question": ["如何办理儒商卡"], "answer": "到网点办理"}, "'question' must be text"),
    ({"question": "如何办理儒商卡", "answer": "到网点办理", "similar": [["怎么办"]]},
     "'similar' must be text or a list of text"),
])
def test_a_jsonl_value_of_the_wrong_shape_is_refused_with_its_line(content, tmp_path, row,
                                                                   words):
    sheet = tmp_path / "kb.jsonl"
    sheet.write_text('{"question": "好的一行", "answer": "好"}\n'
                     + json.dumps(row, ensure_ascii=False) + "\n", "utf-8")
    before = files_of(content)
    with pytest.raises(SheetError, match=f"kb.jsonl:2: {words}"):
        import_sheet(sheet, content)
    assert files_of(content) == before


def test_a_gbk_csv_from_excel_is_read(content, tmp_path):
    sheet = write_csv(tmp_path / "faq.csv", ROWS[:1], encoding="gb18030")
    assert import_sheet(sheet, content, dry_run=True).created[0].title == "电表箱门坏了找谁修"


@pytest.mark.parametrize("header,rows,words", [
    (["问题", "回答"], ROWS, "wrong columns (the first row has: 问题, 回答); missing 答案"),
    (["标准问题", "答案", "答案"], ROWS, "答案 twice"),
    ([], [], "missing 标准问题, 答案"),
])
def test_wrong_columns_are_refused_and_nothing_is_written(content, tmp_path, header, rows, words):
    before = files_of(content)
    sheet = write_xlsx(tmp_path / "bad.xlsx", [r[: len(header)] for r in rows], header)
    with pytest.raises(SheetError) as caught:
        import_sheet(sheet, content)
    assert words in str(caught.value)
    assert files_of(content) == before


@pytest.mark.parametrize("rows,problem", [
    ([ROWS[0], ["空答案的问题", "", "", "故障报修", ""]], "row 3: 答案 is empty"),
    ([ROWS[0], ["", "只有相似问题", "有答案", "", ""]], "row 3: 标准问题 is empty"),
    ([ROWS[0], ROWS[1], ["电表箱门坏了找谁修？", "", "另一个答案", "", ""]],
     "row 4: 标准问题 '电表箱门坏了找谁修？' repeats row 2"),
    ([ROWS[0], ["表箱锁", "表箱的门掉下来了", "答案", "", ""]],
     "row 3: 相似问题: '表箱的门掉下来了' is already a similar question of"),
    ([["新问题", "家里没电了怎么办", "答案", "", ""]],
     "row 2: 相似问题: '家里没电了怎么办' is already a similar question of 'repair-home-outage'"),
    ([["新问题", "", "答案\n\n## 依据\n规定", "", ""]], "row 2: 答案: a line '## 依据'"),
])
def test_a_bad_row_refuses_the_whole_sheet(run, content, tmp_path, rows, problem):
    before = files_of(content)
    sheet = write_csv(tmp_path / "bad.csv", rows)
    result = run("import", str(sheet))
    assert result.exit_code == 1
    assert "nothing was written" in result.output and problem in result.output
    assert files_of(content) == before


def test_a_huge_file_is_refused_unread(content, tmp_path):
    sheet = tmp_path / "huge.csv"
    with open(sheet, "wb") as fh:
        fh.truncate(MAX_BYTES + 1)  # sparse: no 20 MB written
    with pytest.raises(SheetError, match="the limit is 20 MB"):
        import_sheet(sheet, content)


def test_an_xlsx_zip_bomb_is_refused_before_parsing(content, tmp_path):
    sheet = write_xlsx(tmp_path / "bomb.xlsx", ROWS)
    with zipfile.ZipFile(sheet, "a", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("xl/padding.xml", b"\0" * (50 * 2**20))  # 50 MB of zeros: a few KB zipped
    assert sheet.stat().st_size < 2**20
    before = files_of(content)
    with pytest.raises(SheetError, match="zip bomb"):
        import_sheet(sheet, content)
    assert files_of(content) == before


def test_a_file_that_is_not_a_workbook_is_refused(content, tmp_path):
    sheet = tmp_path / "fake.xlsx"
    sheet.write_text("标准问题,答案\n", "utf-8")
    with pytest.raises(SheetError, match="not an XLSX workbook"):
        import_sheet(sheet, content)


def test_an_unknown_kind_is_refused(content, tmp_path):
    sheet = tmp_path / "faq.xls"
    sheet.write_bytes(b"\xd0\xcf\x11\xe0")
    with pytest.raises(SheetError, match="save it as .xlsx"):
        import_sheet(sheet, content)


# Exporting.


def test_export_csv_then_import_skips_every_article(run, content, tmp_path):
    out = tmp_path / "review.csv"
    result = run("export", "--format", "csv", "--out", str(out))
    assert result.exit_code == 0 and result.output == f"exported 6 articles to {out}\n"
    assert out.read_bytes().startswith("\ufeff".encode())  # Excel opens it as UTF-8
    again = run("import", str(out))
    assert again.exit_code == 0 and "0 created, 6 skipped" in again.output


def test_export_xlsx_round_trips_every_field(content, tmp_path):
    path = content / "repair" / "repair-home-outage.md"
    path.write_text(path.read_text("utf-8").replace(
        "effective: 2025-01-01", "effective: 2025-01-01\neffective_to: 2099-12-31\n"
        "related: [repair-arrival-time]").replace("您好，请您", "=SUM(A1) 您好，请您"), "utf-8")
    out = tmp_path / "review.xlsx"
    write_export(export_rows(content), out, "xlsx")
    cell = load_workbook(out)["知识库"]["D2"]
    assert cell.data_type == "s"  # kept text, not run as a formula
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    plan = import_sheet(out, fresh)
    original, _ = load_folder(content)
    strip = lambda a: a.__class__(**{**a.__dict__, "path": ""})  # noqa: E731
    assert sorted(map(strip, plan.created), key=lambda a: a.id) == \
        sorted(map(strip, original), key=lambda a: a.id)


def test_export_csv_guards_formulas_and_import_restores_them(content, tmp_path):
    path = content / "billing" / "pay-channels.md"
    path.write_text(path.read_text("utf-8").replace("您好，您可以", "=HYPERLINK(\"x\") 您可以"), "utf-8")
    out = tmp_path / "review.csv"
    write_export(export_rows(content), out, "csv")
    assert "'=HYPERLINK" in out.read_text("utf-8-sig")
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    created = {a.id: a for a in import_sheet(out, fresh).created}
    assert created["pay-channels"].answer.startswith("=HYPERLINK")


def test_export_to_stdout(run):
    result = run("export", "--format", "csv", "--out", "-")
    rows = list(csv.reader(result.output.lstrip("\ufeff").splitlines()))
    assert rows[0][:4] == ["id", "标准问题", "相似问题", "答案"]


# `kb lint --deep`.


def test_near_duplicates_name_both_articles(content, e5):
    from kb.knowledge_base import KnowledgeBase

    path = content / "billing" / "bill-why-high.md"
    path.write_text(path.read_text("utf-8").replace("similar:\n", "similar:\n  - 家里停电了怎么报修\n"),
                    "utf-8")
    articles, _ = load_folder(content)
    kb = KnowledgeBase(content, content.parent / "data", e5)
    problems = near_duplicates(articles, kb.embed_questions)
    assert len(problems) == 1
    p = problems[0]
    assert p.severity == "warning" and p.path.endswith("repair-home-outage.md")
    assert p.message.startswith("'家中停电如何报修' is a near duplicate of '家里停电了怎么报修' of "
                                "'bill-why-high'")


def test_lint_deep_on_clean_content(run):
    result = run("lint", "--deep")
    assert result.exit_code == 0 and result.output.strip() == "0 errors, 0 warnings"
