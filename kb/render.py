"""Markdown to sanitised HTML: nothing from an article may run script in a browser."""

import markdown
import nh3

ALLOWED_TAGS = {
    "p", "br", "strong", "em", "b", "i", "ul", "ol", "li", "h2", "h3", "h4", "blockquote",
    "code", "pre", "table", "thead", "tbody", "tr", "th", "td", "a", "hr", "span",
}


def render_html(text: str) -> str:
    html = markdown.markdown(text, extensions=["tables", "sane_lists"])
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes={"a": {"href", "title"}},
        url_schemes={"http", "https", "mailto", "tel"},
        link_rel="noopener noreferrer",
    )
