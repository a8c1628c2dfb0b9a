"""`kb import` and `kb export`: question-answer sheets (CSV, XLSX, JSONL) to Markdown articles
and back. An import checks every row first and writes only when all of them are good, so a bad
sheet leaves content/ as it was."""

import csv
import datetime as dt
import hashlib
import io
import json
import re
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from kb.article import Article, dump_article, load_folder
from kb.editing import conflicts, draft, folder_for, read_back, write_atomic
from kb.errors import FieldProblem, InvalidArticle, SheetError
from kb.faqbench import slug
from kb.lint import question_key, question_owners

MAX_BYTES = 20 * 1024 * 1024  # a sheet of 20,000 long answers is a few MB
MAX_UNZIPPED = 200 * 1024 * 1024  # XLSX: what its parts may take once inflated
MAX_RATIO = 100  # XLSX: how much one part may inflate (zip bombs inflate a thousandfold)
MAX_ROWS = 100_000
IMPORT_FOLDER = "imported"  # new articles of a category no folder holds yet
DEFAULT_CATEGORY = "未分类"

# Column headers (and JSONL keys, including the ../shared/bench shape) to article fields.
COLUMNS = {
    "标准问题": "title", "问题": "title", "question": "title", "title": "title",
    "相似问题": "similar", "相似问法": "similar", "similar": "similar",
    "答案": "answer", "标准答案": "answer", "answer": "answer",
    "分类": "category", "category": "category",
    "标签": "tags", "tags": "tags",
    "依据": "basis", "basis": "basis",
    "id": "id", "编号": "id",
    "生效日期": "effective", "effective": "effective",
    "失效日期": "effective_to", "effective_to": "effective_to",
    "相关文章": "related", "related": "related",
}
HEADERS = {"id": "id", "title": "标准问题", "similar": "相似问题", "answer": "答案",
           "basis": "依据", "category": "分类", "tags": "标签", "effective": "生效日期",
           "effective_to": "失效日期", "related": "相关文章"}
REQUIRED = ("title", "answer")
LIST_SPLIT = {"similar": re.compile(r"\s*[\n|｜]\s*"),  # questions may hold spaces and commas
              "tags": re.compile(r"[\s|｜,，、;；]+"), "related": re.compile(r"[\s|｜,，;；]+")}
FORMULA_START = ("=", "+", "-", "@")  # spreadsheet formula triggers (CSV injection)


@dataclass
class Row:
    number: int  # as the editor sees it: the spreadsheet row, or the JSONL line
    values: dict  # field -> text, or a list for JSONL lists


@dataclass
class ImportPlan:
    created: list[Article] = field(default_factory=list)  # each with its path
    skipped: list[tuple[int, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # any one refuses the whole sheet
    ignored_columns: list[str] = field(default_factory=list)


# Reading.


def read_sheet(path: Path) -> tuple[list[Row], list[str]]:
    """(rows, ignored column names) of a CSV, XLSX or JSONL file. Raises SheetError."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SheetError(f"{path}: cannot read it ({exc.strerror})") from None
    if size > MAX_BYTES:
        raise SheetError(f"{path} is {size / 2**20:.1f} MB; the limit is "
                         f"{MAX_BYTES // 2**20} MB: split it into smaller sheets")
    kind = path.suffix.lower()
    if kind in (".csv", ".tsv", ".txt"):
        return _table(path, _csv_rows(path))
    if kind in (".xlsx", ".xlsm"):
        return _table(path, _xlsx_rows(path))
    if kind in (".jsonl", ".json"):
        return _jsonl_rows(path), []
    hint = ": save it as .xlsx" if kind == ".xls" else ""
    raise SheetError(f"{path}: unknown kind '{kind}'{hint}; use .csv, .xlsx or .jsonl")


def _csv_rows(path: Path):
    data = path.read_bytes()
    for encoding in ("utf-8-sig", "gb18030"):  # Excel in Chinese saves CSV as GBK
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise SheetError(f"{path} is neither UTF-8 nor GB18030 text: save it as UTF-8 CSV")
    delimiter = "\t" if path.suffix.lower() == ".tsv" or (
        "\t" in text.split("\n", 1)[0] and "," not in text.split("\n", 1)[0]) else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for number, record in enumerate(reader, start=1):  # the row a spreadsheet shows
            yield number, [_uncsv(c) for c in record]
    except csv.Error as exc:
        raise SheetError(f"{path}:{reader.line_num}: not valid CSV ({exc})") from None


def _uncsv(cell: str) -> str:
    """A cell `kb export` guarded against formula injection, as it was ("'=x" -> "=x")."""
    return cell[1:] if cell.startswith("'") and cell[1:2] in FORMULA_START else cell


def check_zip(path: Path) -> None:
    """Refuse an XLSX whose parts would inflate beyond reason, before any XML is parsed."""
    try:
        with zipfile.ZipFile(path) as z:
            parts = z.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise SheetError(f"{path} is not an XLSX workbook ({exc}): save it again from Excel "
                         "or WPS as .xlsx") from None
    total = sum(p.file_size for p in parts)
    inflating = [p for p in parts
                 if p.file_size > 2**20 and p.file_size > MAX_RATIO * max(p.compress_size, 1)]
    if total > MAX_UNZIPPED or inflating or len(parts) > 10_000:
        raise SheetError(f"{path} would inflate to {total / 2**20:.0f} MB "
                         f"({len(inflating)} parts over {MAX_RATIO}x): refused as a zip bomb; "
                         "export the sheet again")


def _xlsx_rows(path: Path):
    check_zip(path)
    from openpyxl import load_workbook  # defusedxml, installed with it, refuses XML bombs

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a damaged file
        raise SheetError(f"{path}: cannot open the workbook ({exc})") from None
    try:
        sheet = workbook.worksheets[0]
        for number, cells in enumerate(sheet.iter_rows(values_only=True), start=1):
            yield number, [_cell_text(c) for c in cells]
    finally:
        workbook.close()


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _table(path: Path, records) -> tuple[list[Row], list[str]]:
    """Rows keyed by field from (number, cells) records whose first is the header."""
    records = iter(records)
    number, header = next(records, (0, []))
    names = [h.strip().lstrip("\ufeff") for h in header]
    columns = {i: COLUMNS.get(n, COLUMNS.get(n.lower())) for i, n in enumerate(names)}
    fields = [f for f in columns.values() if f]
    missing = [HEADERS[f] for f in REQUIRED if f not in fields]
    twice = sorted({HEADERS[f] for f in fields if fields.count(f) > 1})
    if missing or twice:
        shown = ", ".join(n for n in names if n) or "none"
        raise SheetError(
            f"{path}: wrong columns (the first row has: {shown}); "
            + (f"missing {', '.join(missing)}" if missing else f"{', '.join(twice)} twice")
            + ". A sheet needs 标准问题 and 答案, and may have 相似问题 (several separated by "
              "new lines or '|'), 分类, 标签, 依据, id, 生效日期, 失效日期, 相关文章")
    ignored = [n for i, n in enumerate(names) if n and not columns[i]]
    rows = []
    for number, cells in records:
        if len(rows) >= MAX_ROWS:
            raise SheetError(f"{path} has over {MAX_ROWS} rows: split it into smaller sheets")
        values = {columns[i]: c.strip() for i, c in enumerate(cells[:len(names)]) if columns[i]}
        rows.append(Row(number, values))
    return rows, ignored


def _jsonl_rows(path: Path) -> list[Row]:
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise SheetError(f"{path} is not UTF-8 text: save it as UTF-8") from None
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise SheetError(f"{path}:{number}: not a JSON object ({exc})") from None
        if not isinstance(record, dict):
            raise SheetError(f"{path}:{number}: not a JSON object")
        values = {}
        for key, value in record.items():
            name = COLUMNS.get(str(key).strip(), COLUMNS.get(str(key).strip().lower()))
            if name is None or value is None:
                continue
            # A list where text belongs, or an object anywhere, would be written as Python's
            # text of it ({'a': 1}) into an article agents read out.
            if isinstance(value, dict) or (isinstance(value, list) and (
                    name not in LIST_SPLIT or any(isinstance(v, list | dict) for v in value))):
                raise SheetError(f"{path}:{number}: '{key}' must be "
                                 f"{'text or a list of text' if name in LIST_SPLIT else 'text'}")
            values[name] = value if isinstance(value, list) else _cell_text(value).strip()
        rows.append(Row(number, values))
        if len(rows) > MAX_ROWS:
            raise SheetError(f"{path} has over {MAX_ROWS} lines: split it")
    return rows


# Planning and writing.


def _items(values: dict, name: str) -> list[str]:
    value = values.get(name) or []
    items = value if isinstance(value, list) else LIST_SPLIT[name].split(value)
    return [str(s).strip() for s in items if str(s).strip()]


def _date(text: str, name: str, problems: list[str], where: str) -> dt.date | None:
    if not text:
        return None
    try:
        return dt.date.fromisoformat(str(text)[:10])
    except ValueError:
        problems.append(f"{where}: {HEADERS[name]} '{text}' is not a date like 2025-01-01")
        return None


def new_id(title: str) -> str:
    """An id for a sheet row without one: stable, so importing again finds the same id."""
    return "q-" + hashlib.sha256(question_key(title).encode("utf-8")).hexdigest()[:10]


def plan_import(rows: list[Row], existing: list[Article], content_dir: Path,
                today: dt.date | None = None) -> ImportPlan:
    """What importing the rows would do, checked as an editor's write is (kb/editing.py)."""
    today = today or dt.date.today()
    plan = ImportPlan()
    on_disk = question_owners(existing)
    owner = dict(on_disk)  # grows with the rows planned so far
    known = {a.id for a in existing}
    given = {slug(str(r.values["id"])) for r in rows if r.values.get("id")}
    records = [{"category": a.category, "path": a.path} for a in existing]
    first_row: dict[str, int] = {}
    for row in rows:
        v, where = row.values, f"row {row.number}"
        title, answer = str(v.get("title") or "").strip(), str(v.get("answer") or "").strip()
        if not any(str(x).strip() for x in v.values()):
            continue  # a blank line between blocks of rows
        if not title:
            plan.problems.append(f"{where}: 标准问题 is empty")
            continue
        key = question_key(title)
        if key in first_row:
            plan.problems.append(f"{where}: 标准问题 '{title}' repeats row {first_row[key]}")
            continue
        first_row[key] = row.number
        if key in on_disk:
            other, kind = on_disk[key]
            plan.skipped.append((row.number, f"'{title}' is already the {kind} of '{other.id}'"))
            continue
        if not answer:
            plan.problems.append(f"{where}: 答案 is empty: write the standard answer")
            continue
        article_id = slug(str(v["id"])) if v.get("id") else new_id(title)
        if article_id in known:
            plan.problems.append(f"{where}: id '{article_id}' is taken by another article")
            continue
        category = str(v.get("category") or "").strip() or DEFAULT_CATEGORY
        article = draft(
            id=article_id, title=title, category=category, answer=answer,
            basis=str(v.get("basis") or ""), tags=_items(v, "tags"),
            similar=list(dict.fromkeys(s for s in _items(v, "similar") if question_key(s) != key)),
            related=_items(v, "related"),
            effective=_date(v.get("effective"), "effective", plan.problems, where),
            effective_to=_date(v.get("effective_to"), "effective_to", plan.problems, where),
        )
        folder = folder_for(category, records, content_dir, IMPORT_FOLDER)
        path = Path(content_dir) / folder / f"{article_id}.md"
        try:
            saved, _ = read_back(replace(article, path=str(path)))
        except InvalidArticle as exc:
            plan.problems += [f"{where}: {HEADERS.get(p.field, p.field)}: {p.message}"
                              for p in exc.problems]
            continue
        found = conflicts(saved, owner, known | given, today)
        if path.exists():
            found.append(FieldProblem("id", f"{path} exists already", "file_exists"))
        if found:
            plan.problems += [f"{where}: {HEADERS.get(p.field, p.field)}: {p.message}"
                              for p in found]
            continue
        plan.created.append(saved)
        known.add(saved.id)
        records.append({"category": saved.category, "path": str(path)})
        for kind, question in (("title", saved.title), *(("similar", s) for s in saved.similar)):
            owner.setdefault(question_key(question), (saved, kind))
    return plan


def import_sheet(path: Path, content_dir: Path, dry_run: bool = False) -> ImportPlan:
    """Read, check and (unless dry_run) write. Raises SheetError, writing nothing, when the
    sheet or any row is bad."""
    rows, ignored = read_sheet(path)
    # Broken files are for `kb lint`, not for us; a folder not made yet holds nothing.
    existing, _ = load_folder(content_dir) if Path(content_dir).is_dir() else ([], [])
    plan = plan_import(rows, existing, content_dir)
    plan.ignored_columns = ignored
    if plan.problems:
        raise SheetError(f"{path}: {len(plan.problems)} problems; nothing was written",
                         plan.problems)
    if not dry_run:
        for article in plan.created:
            write_atomic(Path(article.path), dump_article(article))
    return plan


# Exporting.


def export_rows(content_dir: Path) -> list[list[str]]:
    """The header and one row per article, in the columns an import reads back."""
    articles, _ = load_folder(content_dir)
    rows = [list(HEADERS.values())]
    for a in sorted(articles, key=lambda a: (a.category, a.id)):
        rows.append([a.id, a.title, "\n".join(a.similar), a.answer, a.basis, a.category,
                     "|".join(a.tags), a.effective.isoformat() if a.effective else "",
                     a.effective_to.isoformat() if a.effective_to else "", "|".join(a.related)])
    return rows


def write_export(rows: list[list[str]], out, kind: str) -> None:
    """Write rows as CSV (UTF-8 with BOM, so Excel shows Chinese) or XLSX. Cells that a
    spreadsheet would run as a formula are kept text."""
    if kind == "csv":
        guarded = [["'" + c if c.startswith(FORMULA_START) else c for c in row] for row in rows]
        text = io.StringIO(newline="")
        csv.writer(text).writerows(guarded)
        data = "\ufeff" + text.getvalue()
        if isinstance(out, io.TextIOBase):
            out.write(data)
        else:
            Path(out).write_text(data, encoding="utf-8", newline="")
        return
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "知识库"
    for r, row in enumerate(rows, start=1):
        for c, value in enumerate(row, start=1):
            cell = sheet.cell(row=r, column=c, value=value)
            cell.data_type = "s"  # openpyxl would take "=..." for a formula
    workbook.save(out)
