"""Charts as inline SVG, drawn on the server: no script library, nothing fetched.

A chart is a few polylines (or bars) over the last hour with the largest value on the axis;
numbers are formatted here and every text is escaped, so a chart is safe to inline.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

W, H = 560, 150
LEFT, RIGHT, TOP, BOTTOM = 48, 8, 18, 20


def _fmt(value: float, unit: str) -> str:
    if unit == "s":
        if value < 1:
            return f"{value * 1000:.0f} ms" if value >= 0.001 else f"{value * 1e6:.0f} µs"
        return f"{value:.1f} s"
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def chart(title: str, lines: Sequence[tuple[str, Sequence[float | None]]], unit: str = "",
          bars: bool = False, tone: int = 0) -> str:
    """An SVG of ``lines`` (label, one value a minute, None where unknown), newest right."""
    values = [v for _, vs in lines for v in vs if v is not None]
    top = max(values, default=0.0) or 1.0
    count = max((len(vs) for _, vs in lines), default=0)
    width, height = W - LEFT - RIGHT, H - TOP - BOTTOM

    def x(i: int) -> float:
        return LEFT + (i + 0.5) * width / max(count, 1)

    def y(v: float) -> float:
        return TOP + height - v / top * height

    parts = [f'<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{escape(title)}"'
             ' xmlns="http://www.w3.org/2000/svg">',
             f'<text class="title" x="{LEFT}" y="12">{escape(title)}</text>',
             f'<line class="axis" x1="{LEFT}" y1="{TOP + height}" x2="{W - RIGHT}"'
             f' y2="{TOP + height}"/>',
             f'<line class="grid" x1="{LEFT}" y1="{TOP}" x2="{W - RIGHT}" y2="{TOP}"/>',
             f'<text class="tick" x="{LEFT - 4}" y="{TOP + 4}" text-anchor="end">'
             f'{escape(_fmt(top, unit))}</text>',
             f'<text class="tick" x="{LEFT - 4}" y="{TOP + height}" text-anchor="end">0</text>',
             f'<text class="tick" x="{LEFT}" y="{H - 4}">-60 min</text>',
             f'<text class="tick" x="{LEFT + width / 2}" y="{H - 4}" text-anchor="middle">'
             '-30 min</text>',
             f'<text class="tick" x="{W - RIGHT}" y="{H - 4}" text-anchor="end">now</text>']
    for n, (label, vs) in enumerate(lines, tone):
        parts += _bars(vs, x, y, n, width / max(count, 1)) if bars else _line(vs, x, y, n)
        right = W - RIGHT - 4 - 90 * (len(lines) - 1 - n + tone)
        parts.append(f'<text class="legend s{n}" x="{right}" y="12" text-anchor="end">'
                     f'{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _line(vs: Sequence[float | None], x: Callable[[int], float], y: Callable[[float], float],
          n: int) -> list[str]:
    runs: list[list[str]] = [[]]
    for i, v in enumerate(vs):
        if v is None:
            runs.append([])
        else:
            runs[-1].append(f"{x(i):.1f},{y(v):.1f}")
    out = []
    for run in runs:
        if len(run) == 1:
            cx, cy = run[0].split(",")
            out.append(f'<circle class="s{n}" cx="{cx}" cy="{cy}" r="2"/>')
        elif run:
            out.append(f'<polyline class="s{n}" points="{" ".join(run)}"/>')
    return out


def _bars(vs: Sequence[float | None], x: Callable[[int], float], y: Callable[[float], float],
          n: int, step: float) -> list[str]:
    base = y(0)
    w = max(step * 0.8, 1.0)
    return [f'<rect class="s{n}" x="{x(i) - w / 2:.1f}" y="{y(v):.1f}" width="{w:.1f}"'
            f' height="{base - y(v):.1f}"/>' for i, v in enumerate(vs) if v]
