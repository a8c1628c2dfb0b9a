"""Property tests: the article parser, the query normaliser, the segmenter, the importers and the
HTTP API take arbitrary input without crashing. Bounded example counts keep the run in seconds; failures
hypothesis finds are kept in .hypothesis/ and replayed first next time."""

import csv
import datetime as dt
import io
import json
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from indexer.embedders import HashEmbedder
from indexer.normalize import has_content, normalize, strip_fillers
from indexer.segment import Segmenter, char_grams
from kb.article import Article, dump_article, load_file, load_folder, parse_article
from kb.config import Settings
from kb.errors import ArticleError, SheetError
from kb.importer import COLUMNS, import_sheet
from kb.knowledge_base import KnowledgeBase
from server.app import create_app

FIXTURES = Path(__file__).parent / "fixtures"
BOUNDED = settings(max_examples=150, deadline=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture,
                                          HealthCheck.too_slow])

# Text as editors write it: any printable character, no line breaks other than "\n".
LINE_BREAKS = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
printable = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp"),
                          exclude_characters=LINE_BREAKS)
line = st.text(printable, min_size=1, max_size=30).map(str.strip).filter(bool)
ids = st.from_regex(r"\A[a-z0-9]{1,10}(-[a-z0-9]{1,10}){0,3}\Z")
answer = st.lists(line, min_size=1, max_size=4).map("\n".join).filter(
    lambda t: "依据" not in t and t.strip() == t)


# The article parser.


@BOUNDED
@given(st.text())
def test_parser_raises_only_article_errors_on_any_text(text):
    try:
        parse_article(text, "fuzz.md")
    except ArticleError as exc:
        assert "fuzz.md" in str(exc)


@BOUNDED
@given(st.text(), st.text())
def test_parser_raises_only_article_errors_on_any_front_matter(front, body):
    try:
        parse_article(f"---\n{front}\n---\n{body}", "fuzz.md")
    except ArticleError as exc:
        assert "fuzz.md" in str(exc)


@BOUNDED
@given(ids, line, line, answer, st.lists(line, max_size=4, unique=True),
       st.lists(line, max_size=4, unique=True), st.one_of(st.none(), st.dates(
           min_value=dt.date(2000, 1, 1), max_value=dt.date(2099, 12, 31))))
def test_dump_then_parse_gives_the_article_back(aid, title, category, text, tags, similar, day):
    article = Article(id=aid, title=title, category=category, answer=text, tags=tuple(tags),
                      similar=tuple(similar), effective=day, path="<text>")
    again = parse_article(dump_article(article))
    assert again == article


# The query normaliser and the segmenter.


@BOUNDED
@given(st.text(), st.booleans())
def test_normalize_never_raises_and_is_idempotent(text, simplify):
    once = normalize(text, simplify)
    assert normalize(once, simplify) == once
    assert once == once.strip() and "  " not in once
    stripped = strip_fillers(once)
    assert isinstance(stripped, str)
    assert has_content(stripped) == has_content(once)


SEGMENTER = Segmenter(["电费", "过户"], [["停电", "没电", "断电"]])


@BOUNDED
@given(st.text())
def test_segmenter_never_raises_and_gives_words(text):
    words = SEGMENTER.words(normalize(text))
    assert all(w.strip() for w in words)
    assert all(isinstance(s, str) for s in SEGMENTER.expand(words))
    assert all(g for g in char_grams(text))


# The HTTP API.


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    shutil.copytree(FIXTURES / "content", root / "content")
    kb = KnowledgeBase(root / "content", root / "data", HashEmbedder())  # not about ranking
    kb.reindex()
    return create_app(Settings(content_dir=kb.content_dir, data_dir=kb.data_dir,
                               editor_tokens="fuzz-token"), kb)


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@BOUNDED
@given(q=st.text(max_size=300), k=st.integers(-5, 60), category=st.one_of(st.none(), st.text(
    max_size=60)))
def test_search_never_answers_5xx(client, q, k, category):
    params = {"q": q, "k": k, **({"category": category} if category is not None else {})}
    r = client.get("/api/search", params=params)
    assert r.status_code < 500, r.text
    if r.status_code != 200:
        assert r.json()["detail"]


def test_openapi_operations_never_answer_5xx(app):
    """schemathesis over every operation of the OpenAPI schema, 15 cases each, with an editor
    token so writes get past auth. (Its pytest plugin does not run under pytest 9, so the
    operations' hypothesis strategies are driven directly.)"""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8
    statuses: Counter = Counter()
    for operation in operations:
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)
        @given(operation.as_strategy())
        def call(case):
            response = case.call_and_validate(headers={"Authorization": "Bearer fuzz-token"},
                                              checks=[not_a_server_error])
            statuses[response.status_code] += 1

        call()
    print(f"\nschemathesis: {len(operations)} operations, {sum(statuses.values())} cases, "
          f"statuses {dict(sorted(statuses.items()))}")
    assert sum(statuses.values()) >= 50 and not any(code >= 500 for code in statuses)


# The importers: any sheet gives imported articles or a SheetError, and an error writes nothing.

COLUMN_NAMES = [*COLUMNS, "备注", "", " 答案 ", "ANSWER"]  # known, unknown, padded, upper case
cells = st.one_of(
    st.text(max_size=40),
    line,  # printable text, as editors type it
    st.sampled_from(["", " ", "=1+1", "'=cmd|' /C calc'!A0", "@SUM(A1)", "2025-01-01",
                     "2025-13-45", "家里没电了怎么办", "电费可以通过哪些方式缴纳", "a|b｜c",
                     "第一行\n第二行", "repair-home-outage", "Bad_ID", "../../etc/passwd",
                     "<script>alert(1)</script>", "答复\n\n## 依据\n规定", "\ufeff标准问题"]),
)
# Half the headers have the two columns a sheet needs, so rows get checked too, not only headers.
headers = st.one_of(
    st.lists(st.one_of(st.sampled_from(COLUMN_NAMES), st.text(max_size=10)), max_size=8),
    st.lists(st.sampled_from(COLUMN_NAMES), max_size=4).flatmap(
        lambda more: st.permutations(["标准问题", "答案", *more])),
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), cells),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                               max_size=3),
    max_leaves=8)
records = st.one_of(
    st.dictionaries(st.one_of(st.sampled_from(COLUMN_NAMES), st.text(max_size=8)), json_values,
                    max_size=8),
    st.fixed_dictionaries({"question": cells, "answer": cells}, optional={
        k: json_values for k in ("similar", "category", "tags", "id", "effective", "basis")}),
)


def files_of(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def imports_or_refuses(write_sheet) -> None:
    """Import a sheet written by write_sheet(folder) -> path into a fresh copy of the fixture
    content: either every created article is a new file that reads back as planned, or a
    SheetError comes and content/ is as it was."""
    with tempfile.TemporaryDirectory() as tmp:
        content = Path(tmp) / "content"
        shutil.copytree(FIXTURES / "content", content)
        path = write_sheet(Path(tmp))
        before, existing = files_of(content), len(load_folder(content)[0])
        try:
            plan = import_sheet(path, content)
        except SheetError as exc:
            assert str(exc) and files_of(content) == before
            event("refused")  # --hypothesis-show-statistics shows how often each way went
            return
        event(f"imported {len(plan.created) if len(plan.created) < 2 else 'several'}")
        after = files_of(content)
        assert {p: after[p] for p in before} == before  # nothing that was there changed
        assert set(after) - set(before) == {Path(a.path) for a in plan.created}
        for article in plan.created:
            assert load_file(Path(article.path)) == article
        articles, errors = load_folder(content)
        assert not errors and len(articles) == existing + len(plan.created)


@BOUNDED
@given(headers, st.lists(st.lists(cells, max_size=9), max_size=6) | st.lists(
    st.lists(cells, min_size=2, max_size=4), max_size=3),
       st.sampled_from(["utf-8-sig", "utf-8", "gb18030"]), st.sampled_from([",", "\t"]))
def test_a_csv_sheet_imports_or_is_refused_whole(header, rows, encoding, delimiter):
    def write(folder: Path) -> Path:
        text = io.StringIO(newline="")
        csv.writer(text, delimiter=delimiter).writerows([header, *rows])
        path = folder / ("sheet.tsv" if delimiter == "\t" else "sheet.csv")
        path.write_bytes(text.getvalue().encode(encoding))
        return path

    imports_or_refuses(write)


@BOUNDED
@given(st.lists(st.one_of(records.map(lambda r: json.dumps(r, ensure_ascii=False)),
                          json_values.map(json.dumps), st.text(max_size=30)), max_size=6))
def test_a_jsonl_sheet_imports_or_is_refused_whole(lines):
    def write(folder: Path) -> Path:
        path = folder / "sheet.jsonl"
        path.write_text("\n".join(lines), encoding="utf-8")
        return path

    imports_or_refuses(write)


@BOUNDED
@given(st.sampled_from(["sheet.csv", "sheet.tsv", "sheet.jsonl", "sheet.xlsx"]),
       st.sampled_from([b"", "标准问题,答案\n".encode(), b'{"title": "x", "answer": "y"}\n',
                        b"PK\x03\x04"]),
       st.binary(max_size=500))
def test_arbitrary_bytes_import_or_are_refused_whole(name, start, data):
    def write(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(start + data)
        return path

    imports_or_refuses(write)
