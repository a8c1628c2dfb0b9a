import datetime as dt

import pytest

from kb.article import Article, dump_article, load_folder, parse_article
from kb.errors import ArticleError

GOOD = """---
id: repair-home-outage
title: 家中停电如何报修
category: 故障报修
tags: [停电, 报修]
similar:
  - 家里没电了怎么办
  - 突然断电了找谁修
effective: 2025-01-01
---
您好，请先看一下总开关。

## 依据
供电服务承诺。
"""


def test_good_article_parses_every_field():
    a = parse_article(GOOD, "x.md")
    assert a.id == "repair-home-outage"
    assert a.title == "家中停电如何报修"
    assert a.tags == ("停电", "报修")
    assert a.similar == ("家里没电了怎么办", "突然断电了找谁修")
    assert a.effective == dt.date(2025, 1, 1)
    assert a.answer == "您好，请先看一下总开关。"
    assert a.basis == "供电服务承诺。"
    assert a.questions[0] == a.title


def test_chinese_round_trip_through_dump_and_parse():
    a = parse_article(GOOD, "x.md")
    again = parse_article(dump_article(a), "x.md")
    assert again == a


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("id: x\n", 1, "front matter missing"),
        ("---\nid: x\ntitle: t\n", 1, "not closed"),
        ("---\nid: a\ntitle: [unclosed\ncategory: c\n---\nbody", 4, "not valid YAML"),
        ("---\nid: a\ncategory: c\n---\nbody", 2, "'title' is required"),
        ("---\nid: Bad_ID\ntitle: t\ncategory: c\n---\nbody", 2, "lowercase letters"),
        ("---\nid: a\ntitle: t\ncategory: c\nsimilar: {x: 1}\n---\nbody", 5, "list of text"),
        ("---\nid: a\ntitle: t\ncategory: c\neffective: soon\n---\nbody", 5, "date like"),
        ("---\nid: a\ntitle: t\ncategory: c\ncolour: red\n---\nbody", 5, "unknown key"),
        ("---\nid: a\ntitle: t\ncategory: c\n---\n\n", 6, "answer is empty"),
        # Impossible dates and times used to stop every build with a bare ValueError.
        ("---\nid: a\ntitle: t\ncategory: c\neffective: 2025-13-01\n---\nbody", 5, "date like"),
        ("---\nid: a\ntitle: t\ncategory: c\neffective_to: 2025-02-30\n---\nbody", 5,
         "date like"),
        ("---\nid: a\ntitle: t\ncategory: c\neffective: 2025-01-01 25:00:00\n---\nbody", 5,
         "date like"),
        ("---\nid: a\ntitle: t\ncategory: c\n2025: x\nfoo: y\n---\nbody", 5, "unknown key '2025'"),
        ("---\nid: a\ntitle: t\ncategory: c\n? [a, b]\n: x\n---\nbody", 2, "must be a word"),
        ("---\nid: a\ntitle: t\ncategory: c\nsimilar: " + "[" * 2000 + "]" * 2000
         + "\n---\nbody", 2, "too deeply"),
        # The plain loader kept the second list and dropped the first without a word.
        ("---\nid: a\ntitle: t\ncategory: c\nsimilar: [甲, 乙]\nsimilar: [丙]\n---\nbody", 6,
         "'similar' is given twice"),
    ],
)
def test_broken_article_names_file_line_and_fix(text, line, words):
    with pytest.raises(ArticleError) as info:
        parse_article(text, "content/broken.md")
    assert info.value.line == line
    assert words in str(info.value)
    assert str(info.value).startswith(f"content/broken.md:{line}:")


def test_a_date_with_a_time_and_a_title_that_looks_like_a_date_are_read():
    text = "---\nid: a\ntitle: 2025-01-01\ncategory: c\neffective: 2025-03-01 08:00:00\n---\nbody"
    a = parse_article(text, "x.md")
    assert a.title == "2025-01-01" and a.effective == dt.date(2025, 3, 1)


def test_tags_written_as_one_line_of_text_are_several_tags():
    text = "---\nid: a\ntitle: t\ncategory: c\ntags: 停电, 报修、抢修\nsimilar: 停了电，找谁修\n---\nbody"
    a = parse_article(text, "x.md")
    assert a.tags == ("停电", "报修", "抢修") and a.similar == ("停了电，找谁修",)


def test_broken_file_does_not_stop_the_others(tmp_path):
    (tmp_path / "good.md").write_text(GOOD, encoding="utf-8")
    (tmp_path / "bad.md").write_text("---\nid: [\n---\n", encoding="utf-8")
    (tmp_path / "latin1.md").write_bytes("---\nid: é\n".encode("latin-1"))
    (tmp_path / "_dict").mkdir()
    (tmp_path / "_dict" / "notes.md").write_text("not an article", encoding="utf-8")
    articles, errors = load_folder(tmp_path)
    assert [a.id for a in articles] == ["repair-home-outage"]
    assert sorted(e.path.split("/")[-1] for e in errors) == ["bad.md", "latin1.md"]
    assert any("UTF-8" in str(e) for e in errors)


def test_a_file_too_large_for_an_article_is_refused_before_it_is_read(tmp_path):
    (tmp_path / "huge.md").write_text(GOOD + "很长的答复。" * 20_000, encoding="utf-8")
    articles, errors = load_folder(tmp_path)
    assert articles == []
    assert str(errors[0]).startswith(f"{tmp_path / 'huge.md'}: the file holds 360,")
    assert "split it" in str(errors[0])


def test_duplicate_id_is_reported_with_both_files(tmp_path):
    (tmp_path / "a.md").write_text(GOOD, encoding="utf-8")
    (tmp_path / "b.md").write_text(GOOD, encoding="utf-8")
    articles, errors = load_folder(tmp_path)
    assert len(articles) == 1
    assert "a.md" in str(errors[0]) and "b.md" in str(errors[0])


def test_article_is_a_frozen_record():
    a = Article(id="a", title="t", category="c", answer="x")
    with pytest.raises(AttributeError):
        a.title = "u"


def test_steps_written_straight_under_their_lead_in_render_as_a_list():
    from kb.render import render_html

    html = render_html("请您先看一下邻居家有没有电：\n1. 如果只有您家没电，请检查总开关。\n"
                       "2. 如果邻居也没电，可能是线路故障。\n\n谢谢。")
    assert html == ("<p>请您先看一下邻居家有没有电：</p>\n<ol>\n<li>如果只有您家没电，请检查总开关。"
                    "</li>\n<li>如果邻居也没电，可能是线路故障。</li>\n</ol>\n<p>谢谢。</p>")
    # The closing sentence written straight under the last step is no part of that step.
    assert render_html("请这样做：\n1. 看总开关\n2. 看邻居家\n需要报修的话，我为您登记。") == (
        "<p>请这样做：</p>\n<ol>\n<li>看总开关</li>\n<li>看邻居家</li>\n</ol>\n"
        "<p>需要报修的话，我为您登记。</p>")
    assert render_html("- 甲\n  接着甲写\n- 乙") == "<ul>\n<li>甲\n  接着甲写</li>\n<li>乙</li>\n</ul>"
    # A year at the start of a line is no list, and a table cell is left alone.
    assert render_html("第一行\n2025. 年起执行") == "<p>第一行\n2025. 年起执行</p>"
    assert "<ol>" not in render_html("| a | b |\n|---|---|\n| 1. x | y |")
