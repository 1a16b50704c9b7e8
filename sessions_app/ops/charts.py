"""Chart geometry for the dashboard's server-rendered SVG (templates/ops/charts/*.html draw it).

Charts are drawn on the server as inline SVG rather than by a JavaScript chart library: the admin runs under a
Content-Security-Policy that allows only our own scripts and there is no CDN to load one from; a daily stacked bar
chart and ranked bars are a few rectangles, which the template draws, so the page needs no script at all, prints,
and can be checked by reading the HTML.
"""

from __future__ import annotations

from dataclasses import dataclass

from sessions_app.ops.figures import Day

WIDTH, HEIGHT = 760, 180  # viewBox units; the SVG scales to its box
LEFT, BOTTOM, TOP = 36, 22, 8  # room for the y labels, the date labels and the top tick


@dataclass
class Segment:
    series: str
    x: float
    y: float
    width: float
    height: float
    value: int
    color: str
    label: str  # tooltip (<title>)


@dataclass
class StackedBars:
    segments: list[Segment]
    y_ticks: list[tuple[float, int]]  # (y, value)
    x_labels: list[tuple[float, str]]  # (x centre, "12-03")
    legend: list[tuple[str, str]]  # (series, color)
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    bottom_y: float = HEIGHT - BOTTOM
    empty: bool = False


def _nice_max(value: int) -> int:
    """A round axis maximum at or above `value`: 1, 2, 5, 10, 20, 50, ..."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def stacked_bars(days: list[Day], series: list[tuple[str, str]]) -> StackedBars:
    """One bar a day, one segment per series (bottom to top in `series` order: [(name, color)]); counts of
    names not in `series` are stacked on top as "other"."""
    names = [name for name, _ in series]
    colors = dict(series) | {"other": "#9aa5b1"}
    peak = max((d.total for d in days), default=0)
    top = _nice_max(max(peak, 1))
    plot_height = HEIGHT - BOTTOM - TOP
    slot = (WIDTH - LEFT) / max(len(days), 1)
    bar = max(slot * 0.7, 1.0)
    segments: list[Segment] = []
    label_every = max(1, round(len(days) / 10))
    x_labels = []
    for i, day in enumerate(days):
        x = LEFT + i * slot + (slot - bar) / 2
        y = HEIGHT - BOTTOM
        other = sum(n for name, n in day.counts.items() if name not in names)
        for name, n in [*((name, day.counts.get(name, 0)) for name in names), ("other", other)]:
            if not n:
                continue
            h = n / top * plot_height
            y -= h
            segments.append(Segment(series=name, x=round(x, 1), y=round(y, 1), width=round(bar, 1),
                                    height=round(h, 1), value=n, color=colors[name],
                                    label=f"{day.day:%Y-%m-%d}: {n} {name}"))
        if i % label_every == 0:
            x_labels.append((round(x + bar / 2, 1), f"{day.day:%m-%d}"))
    y_ticks = [(round(HEIGHT - BOTTOM - plot_height * f, 1), round(top * f)) for f in (0, 0.5, 1)]
    legend = [(name, colors[name]) for name in names] + ([("other", colors["other"])] if any(
        s.series == "other" for s in segments) else [])
    return StackedBars(segments=segments, y_ticks=y_ticks, x_labels=x_labels, legend=legend, empty=peak == 0)


def share(part: int, whole: int) -> float:
    """`part` as a percentage of `whole` (bar widths), 0 when there is nothing."""
    return round(100 * part / whole, 1) if whole else 0.0
