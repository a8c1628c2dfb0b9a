"""Bar charts as SVG, for the HTML report: no plotting library, no script, no external file.

Each function returns the SVG text; `data_uri` turns it into an <img src>, so the report stays
one self-contained file that any browser or mail client shows as it is."""

import base64
from html import escape

FONT = "'WenQuanYi Micro Hei','Noto Sans CJK SC','Microsoft YaHei','PingFang SC',sans-serif"
INK, MUTED, GRID = "#1f2933", "#6b7280", "#e5e7eb"
BLUE, LIGHT, ACCENT = "#2563eb", "#93c5fd", "#dc2626"


def data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def _svg(width: int, height: int, body: list[str], title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="{FONT}" font-size="12">'
            f"<title>{escape(title)}</title>"
            f'<rect width="{width}" height="{height}" fill="#fff"/>' + "".join(body) + "</svg>")


def _ticks(top: int) -> list[int]:
    """Gridline values 0, step, 2*step... up to `top`: the smallest round step (1, 2 or 5
    times a power of ten) that needs no more than five lines."""
    if top <= 0:
        return [0]
    power = 1
    while True:
        for m in (1, 2, 5):
            if top / (m * power) <= 5:
                return list(range(0, top + 1, m * power))
        power *= 10


def columns(labels: list[str], values: list[int], title: str, *, width: int = 900,
            height: int = 260, highlight: set[int] | None = None,
            faint: set[int] | None = None, label_every: int = 1) -> str:
    """Vertical bars with a value axis; `highlight` bars in red, `faint` ones lighter."""
    left, right, top, bottom = 44, 12, 16, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max(values, default=0) or 1
    ticks = _ticks(peak)
    scale = plot_h / max(ticks[-1], peak)
    body = []
    for t in ticks:
        y = top + plot_h - t * scale
        body.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" '
                    f'stroke="{GRID}"/><text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" '
                    f'fill="{MUTED}">{t}</text>')
    slot = plot_w / max(len(values), 1)
    for i, (label, value) in enumerate(zip(labels, values)):
        x = left + i * slot + slot * 0.15
        h = value * scale
        color = ACCENT if highlight and i in highlight else LIGHT if faint and i in faint else BLUE
        body.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{slot * 0.7:.1f}" '
                    f'height="{h:.1f}" fill="{color}"><title>{escape(label)}: {value}</title>'
                    "</rect>")
        if i % label_every == 0:
            body.append(f'<text x="{x + slot * 0.35:.1f}" y="{height - bottom + 16}" '
                        f'text-anchor="middle" fill="{INK}">{escape(label)}</text>')
    body.append(f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" '
                f'y2="{top + plot_h}" stroke="{INK}"/>')
    return _svg(width, height, body, title)


def stacked_rows(labels: list[str], solid: list[int], light: list[int], marks: list[int],
                 title: str, *, width: int = 900, legend: tuple[str, str, str]) -> str:
    """Horizontal bars of solid + light parts, with a black tick at `marks` (last month)."""
    row, left, right, top = 28, 132, 70, 34
    height = top + row * len(labels) + 10
    peak = max([s + li for s, li in zip(solid, light)] + marks + [1])
    scale = (width - left - right) / peak
    body = [_legend(legend, width)]
    for i, label in enumerate(labels):
        y = top + i * row
        a, b = solid[i] * scale, light[i] * scale
        body.append(f'<text x="{left - 8}" y="{y + 17}" text-anchor="end" fill="{INK}">'
                    f"{escape(label)}</text>"
                    f'<rect x="{left}" y="{y + 5}" width="{a:.1f}" height="17" fill="{BLUE}"/>'
                    f'<rect x="{left + a:.1f}" y="{y + 5}" width="{b:.1f}" height="17" '
                    f'fill="{LIGHT}"/>'
                    f'<text x="{left + max(a + b, marks[i] * scale) + 7:.1f}" y="{y + 18}" '
                    f'fill="{INK}">{solid[i] + light[i]}</text>')
        if marks[i]:
            x = left + marks[i] * scale
            body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y + 2}" y2="{y + 25}" '
                        f'stroke="{INK}" stroke-width="2.5"/>')
    return _svg(width, height, body, title)


def _legend(names: tuple[str, str, str], width: int) -> str:
    x = width - 560
    parts = []
    for color, name in zip((BLUE, LIGHT, INK), names):
        mark = (f'<rect x="{x}" y="8" width="14" height="12" fill="{color}"/>' if color != INK
                else f'<line x1="{x + 7}" x2="{x + 7}" y1="5" y2="23" stroke="{INK}" '
                     'stroke-width="2.5"/>')
        parts.append(f'{mark}<text x="{x + 20}" y="19" fill="{INK}">{escape(name)}</text>')
        x += 30 + 13 * len(name)
    return "".join(parts)
