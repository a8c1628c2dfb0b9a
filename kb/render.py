"""Markdown to sanitised HTML: nothing from an article may run script in a browser."""

import re

import markdown
import nh3

ALLOWED_TAGS = {
    "p", "br", "strong", "em", "b", "i", "ul", "ol", "li", "h2", "h3", "h4", "blockquote",
    "code", "pre", "table", "thead", "tbody", "tr", "th", "td", "a", "hr", "span",
}


# A list item: "1. ", "1、", "- ", "* " or "+ " at the start of a line.
LIST_ITEM = re.compile(r"^\s{0,3}(?:\d{1,3}[.、]\s*|[-*+]\s+)\S")
MARKDOWN_ITEM = re.compile(r"^\s{0,3}(?:\d{1,3}\.|[-*+])\s")


def render_html(text: str) -> str:
    html = markdown.markdown(lists_apart(text), extensions=["tables", "sane_lists"])
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes={"a": {"href", "title"}},
        url_schemes={"http", "https", "mailto", "tel"},
        link_rel="noopener noreferrer",
    )


def lists_apart(text: str) -> str:
    """Blank lines around a list written flush against its text. Editors write steps straight
    under their lead-in ("请您这样做：" then "1. …") and the closing sentence straight under
    the last step. Markdown reads the first kind of list as more of the paragraph (the steps
    ran together into one line on the agents' page and in the copied script: 34 of our 168
    articles) and the closing sentence as more of the last step (12 articles)."""
    out, in_list = [], False
    for line in text.splitlines():
        item = bool(MARKDOWN_ITEM.match(line))
        text_line = bool(line.strip()) and not item and not line.startswith((" ", "\t"))
        before = out[-1] if out else ""
        if item and not in_list and before.strip() and not LIST_ITEM.match(before) \
                and not before.startswith((" ", "\t", "|", ">", "#")):
            out.append("")
        elif text_line and in_list and before.strip():
            out.append("")  # an unindented line straight after a step starts a paragraph
        out.append(line)
        if item:
            in_list = True
        elif text_line:
            in_list = False
    return "\n".join(out)
