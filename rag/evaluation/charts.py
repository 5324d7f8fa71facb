"""Charts as inline SVG: pure functions from numbers to markup, with no dependency.

Hand-written rather than matplotlib: the report stays one small file that needs nothing
installed, text stays text (crisp at any zoom and in print, searchable, readable by a screen
reader), and every drawn value is an element a test can read back. Each chart is one
``<svg>`` with a viewBox, so it scales to its box; it has a ``<title>``, and each data mark
has class ``mark``, its value in ``data-value`` and a tooltip.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

W, H = 480, 270
LEFT, RIGHT, TOP, BOTTOM = 46, 12, 34, 44
PLOT_W, PLOT_H = W - LEFT - RIGHT, H - TOP - BOTTOM

# Okabe-Ito: told apart with the common colour-vision deficiencies; dashes for grey print.
MODE_STYLE = {"hybrid": ("#0072B2", ""), "dense": ("#E69F00", "6 3"),
              "lexical": ("#009E73", "2 3")}
OTHER = ["#CC79A7", "#56B4E9", "#D55E00", "#000000"]
ANSWERABLE, UNANSWERABLE = "#0072B2", "#D55E00"
INK, GRID, MUTED = "#222", "#ddd", "#666"


def style(name: str, i: int = 0) -> tuple[str, str]:
    """Colour and dash pattern of a series (modes keep theirs in every chart)."""
    return MODE_STYLE.get(name, (OTHER[i % len(OTHER)], ""))


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About n round tick values from lo up to the first at or above hi (steps of 1, 2 or 5
    times a power of 10)."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 10) for i in range(math.ceil((hi - first) / step - 1e-9) + 1)]


@dataclass(frozen=True)
class Axes:
    """Data coordinates -> SVG pixels for the plot area."""

    x0: float
    x1: float
    y0: float
    y1: float

    def x(self, v: float) -> float:
        """Pixel x of data x."""
        return LEFT + (v - self.x0) / (self.x1 - self.x0) * PLOT_W

    def y(self, v: float) -> float:
        """Pixel y of data y."""
        return TOP + PLOT_H - (v - self.y0) / (self.y1 - self.y0) * PLOT_H


def _f(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def _text(x: float, y: float, s: str, anchor: str = "middle", size: int | None = None,
          fill: str = INK, extra: str = "") -> str:
    sz = f' font-size="{size}"' if size else ""
    return (f'<text x="{_f(x)}" y="{_f(y)}" text-anchor="{anchor}" fill="{fill}"{sz}{extra}>'
            f"{escape(s)}</text>")


def _svg(chart_id: str, title: str, body: list[str]) -> str:
    cid = escape(chart_id)
    return (f'<svg class="chart" id="{cid}" viewBox="0 0 {W} {H}" role="img" '
            f'aria-labelledby="{cid}-title" font-family="system-ui, sans-serif" font-size="12">'
            f'<title id="{cid}-title">{escape(title)}</title>' + "".join(body) + "</svg>")


def _y_axis(ax: Axes, ticks: Sequence[float], label: str, fmt: str = "{:g}") -> list[str]:
    out = []
    for t in ticks:
        y = ax.y(t)
        out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{_f(y)}" y2="{_f(y)}" '
                   f'stroke="{GRID}"/>')
        out.append(_text(LEFT - 5, y + 4, fmt.format(t), "end", 11, MUTED))
    cx, cy = 11, TOP + PLOT_H / 2
    out.append(_text(cx, cy, label, extra=f' transform="rotate(-90 {cx} {_f(cy)})"'))
    return out


def _x_label(label: str) -> str:
    return _text(LEFT + PLOT_W / 2, H - 6, label)


def _x_ticks(ax: Axes, ticks: Sequence[float], fmt: str = "{:g}") -> list[str]:
    base = TOP + PLOT_H
    out = [f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{base}" y2="{base}" stroke="{INK}"/>']
    for t in ticks:
        x = ax.x(t)
        out.append(f'<line x1="{_f(x)}" x2="{_f(x)}" y1="{base}" y2="{base + 4}" '
                   f'stroke="{INK}"/>')
        out.append(_text(x, base + 17, fmt.format(t), size=11, fill=MUTED))
    return out


def _legend(items: Sequence[tuple[str, str, str]]) -> list[str]:
    """Swatches left to right above the plot: (name, colour, dash)."""
    out, x = [], LEFT
    for name, colour, dash in items:
        d = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<line x1="{x}" x2="{x + 18}" y1="14" y2="14" stroke="{colour}" '
                   f'stroke-width="3"{d}/>')
        out.append(_text(x + 22, 18, name, "start"))
        x += 30 + 7 * len(name)
    return out


def _mark_title(s: str) -> str:
    return f"<title>{escape(s)}</title>"


def line_chart(chart_id: str, title: str, xs: Sequence[float],
               series: Mapping[str, Sequence[float]], x_label: str, y_label: str,
               y_min: float | None = None, y_max: float = 1.0) -> str:
    """One line per series over shared x values, with a point (and tooltip) per value."""
    values = [v for vs in series.values() for v in vs]
    lo = y_min if y_min is not None else math.floor(min(values, default=0.0) * 10) / 10
    lo = min(lo, y_max - 0.1)
    ax = Axes(min(xs), max(xs), lo, y_max)
    body = _y_axis(ax, nice_ticks(lo, y_max), y_label) + _x_ticks(ax, xs) + [_x_label(x_label)]
    body += _legend([(n, *style(n, i)) for i, n in enumerate(series)])
    for i, (name, vs) in enumerate(series.items()):
        colour, dash = style(name, i)
        pts = " ".join(f"{_f(ax.x(x))},{_f(ax.y(v))}" for x, v in zip(xs, vs, strict=True))
        d = f' stroke-dasharray="{dash}"' if dash else ""
        body.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" '
                    f'stroke-width="2.5"{d}/>')
        for x, v in zip(xs, vs, strict=True):
            body.append(f'<circle class="mark" data-series="{escape(name)}" data-x="{x:g}" '
                        f'data-value="{v}" cx="{_f(ax.x(x))}" cy="{_f(ax.y(v))}" r="3.5" '
                        f'fill="{colour}">{_mark_title(f"{name} at {x:g}: {v:.3f}")}</circle>')
    return _svg(chart_id, title, body)


def bar_chart(chart_id: str, title: str, categories: Sequence[str],
              series: Mapping[str, Sequence[int]], x_label: str, y_label: str,
              colours: Mapping[str, str] | None = None, edges: Sequence[float] | None = None,
              marker: tuple[float, str] | None = None) -> str:
    """Grouped bars: one slot per category, one bar per series, counts written on top.

    With ``edges`` (len(categories) + 1 numbers) the x axis is numeric (a histogram) and
    ``marker`` = (x, label) draws a vertical line there, e.g. a threshold."""
    n = len(categories)
    top = max([v for vs in series.values() for v in vs] + [1])
    ticks = nice_ticks(0, top, 4)
    ax = Axes(0, n, 0, max(top, ticks[-1]) * 1.12)
    body = _y_axis(ax, [t for t in ticks if t == int(t)], y_label) + [_x_label(x_label)]
    names = list(series)
    body += _legend([(nm, (colours or {}).get(nm) or style(nm, i)[0], "")
                     for i, nm in enumerate(names)])
    if edges is not None:
        num = Axes(edges[0], edges[-1], ax.y0, ax.y1)
        body += _x_ticks(num, edges[::2] if n > 6 else edges)
    else:
        base = TOP + PLOT_H
        body.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{base}" y2="{base}" stroke="{INK}"/>')
        body += [_text(ax.x(i + 0.5), base + 17, c, size=11, fill=MUTED)
                 for i, c in enumerate(categories)]
    slot = PLOT_W / n
    bar = min(24.0, slot * 0.8 / max(1, len(names)))
    for j, name in enumerate(names):
        colour = (colours or {}).get(name) or style(name, j)[0]
        for i, v in enumerate(series[name]):
            x = LEFT + i * slot + (slot - bar * len(names)) / 2 + j * bar
            y = ax.y(v)
            body.append(
                f'<rect class="mark" data-series="{escape(name)}" '
                f'data-category="{escape(categories[i])}" data-value="{v}" x="{_f(x)}" '
                f'y="{_f(y)}" width="{_f(bar - 1)}" height="{_f(TOP + PLOT_H - y)}" '
                f'fill="{colour}">{_mark_title(f"{name}, {categories[i]}: {v}")}</rect>')
            if v and bar >= 14:
                body.append(_text(x + bar / 2 - 0.5, y - 3, str(v), size=10, fill=MUTED))
            elif v:  # too narrow for the count side by side: write it upwards
                cx, cy = x + bar / 2 + 3, y - 3
                body.append(_text(cx, cy, str(v), "start", 10, MUTED,
                                  f' transform="rotate(-90 {_f(cx)} {_f(cy)})"'))
    if marker is not None and edges is not None:
        num = Axes(edges[0], edges[-1], ax.y0, ax.y1)
        mx, label = num.x(marker[0]), marker[1]
        body.append(f'<line class="threshold" x1="{_f(mx)}" x2="{_f(mx)}" y1="{TOP - 4}" '
                    f'y2="{TOP + PLOT_H}" stroke="{INK}" stroke-width="1.5" '
                    f'stroke-dasharray="5 3"/>')
        body.append(_text(mx - 4, TOP + 10, label, "end", 11))
    return _svg(chart_id, title, body)


def reliability_chart(chart_id: str, title: str,
                      bins: Sequence[tuple[float, float, int, float, float]]) -> str:
    """Observed answerable rate per bin of predicted confidence (lo, hi, n, mean, rate),
    against the diagonal of a perfectly calibrated model; counts above the bars."""
    ax = Axes(0, 1, 0, 1.12)
    ticks = [t / 10 for t in range(0, 11, 2)]
    body = (_y_axis(ax, ticks, "observed answerable rate") + _x_ticks(ax, ticks)
            + [_x_label("predicted confidence (P answerable)")])
    body += _legend([("observed", ANSWERABLE, ""), ("perfect calibration", MUTED, "4 3")])
    body.append(f'<line x1="{_f(ax.x(0))}" y1="{_f(ax.y(0))}" x2="{_f(ax.x(1))}" '
                f'y2="{_f(ax.y(1))}" stroke="{MUTED}" stroke-dasharray="4 3"/>')
    for lo, hi, n, mean, rate in bins:
        x, w, y = ax.x(lo) + 1, ax.x(hi) - ax.x(lo) - 2, ax.y(rate)
        tip = (f"{lo:.1f}-{hi:.1f}: {n} questions, mean confidence {mean:.2f}, "
               f"{rate:.0%} answerable")
        body.append(
            f'<rect class="mark" data-lo="{lo}" data-hi="{hi}" data-n="{n}" data-value="{rate}" '
            f'x="{_f(x)}" y="{_f(y)}" width="{_f(w)}" height="{_f(ax.y(0) - y)}" '
            f'fill="{ANSWERABLE}" fill-opacity="0.55">{_mark_title(tip)}</rect>')
        body.append(f'<circle cx="{_f(ax.x(mean))}" cy="{_f(y)}" r="3" fill="{INK}"/>')
        body.append(_text(x + w / 2, y - 4, f"n={n}", size=10, fill=MUTED))
    return _svg(chart_id, title, body)


def log_ticks(lo: float, hi: float) -> list[float]:
    """The 1-2-5 values from the largest at or below lo to the smallest at or above hi."""
    lo, hi = max(lo, 1e-3), max(hi, lo * 1.01, 1e-3)
    steps = [m * 10.0 ** e for e in range(math.floor(math.log10(lo)) - 1,
                                          math.ceil(math.log10(hi)) + 1) for m in (1, 2, 5)]
    first = max(v for v in steps if v <= lo * (1 + 1e-9))
    last = min(v for v in steps if v >= hi * (1 - 1e-9))
    return [round(v, 6) for v in steps if first <= v <= last]


@dataclass(frozen=True)
class LogAxis:
    """Data x -> pixel x on a log scale."""

    x0: float
    x1: float

    def x(self, v: float) -> float:
        """Pixel x of data x (clamped into the axis)."""
        v = min(max(v, self.x0), self.x1)
        return LEFT + math.log(v / self.x0) / math.log(self.x1 / self.x0) * PLOT_W


def strip_chart(chart_id: str, title: str, series: Mapping[str, Sequence[float]],
                marks: Mapping[str, Mapping[str, float]], x_label: str) -> str:
    """One row per series: every value as a dot on a log axis (times have long tails), and
    labelled ticks at ``marks`` (e.g. p50, p95, max) in data units."""
    values = [v for vs in series.values() for v in vs if v > 0] or [1.0]
    ticks = log_ticks(min(values), max(values))
    ax = LogAxis(ticks[0], ticks[-1])
    base = TOP + PLOT_H
    body = [f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{base}" y2="{base}" stroke="{INK}"/>',
            _x_label(x_label)]
    for t in ticks:
        x = ax.x(t)
        body.append(f'<line x1="{_f(x)}" x2="{_f(x)}" y1="{TOP}" y2="{base + 4}" '
                    f'stroke="{GRID}"/>')
        body.append(_text(x, base + 17, f"{t:g}", size=11, fill=MUTED))
    names = list(series)
    row = PLOT_H / max(1, len(names))
    for i, name in enumerate(names):
        colour = style(name, i)[0]
        cy = TOP + row * (i + 0.5)
        body.append(_text(LEFT - 5, cy + 4, name, "end", 11))
        for v in series[name]:
            body.append(f'<circle class="mark" data-series="{escape(name)}" data-value="{v}" '
                        f'cx="{_f(ax.x(v))}" cy="{_f(cy)}" r="3" fill="{colour}" '
                        f'fill-opacity="0.45"/>')
        for k, (label, v) in enumerate(marks.get(name, {}).items()):
            x = ax.x(v)
            body.append(f'<line class="stat" data-series="{escape(name)}" '
                        f'data-stat="{escape(label)}" data-value="{v}" x1="{_f(x)}" x2="{_f(x)}" '
                        f'y1="{_f(cy - 11)}" y2="{_f(cy + 11)}" stroke="{INK}" stroke-width="2">'
                        f'{_mark_title(f"{name} {label}: {v:.1f}")}</line>')
            body.append(_text(x, cy - 14 if k % 2 == 0 else cy + 23, label, size=10,
                              fill=MUTED))
    return _svg(chart_id, title, body)
