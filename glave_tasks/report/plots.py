"""Plots as inline SVG (matplotlib, Agg): the report needs no network and no external file."""

from __future__ import annotations

import io
from collections.abc import Sequence


def _svg(fig) -> str:  # noqa: ANN001 - a matplotlib Figure
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog and DOCTYPE (inline in HTML)


def _figure(width: float = 7.0, height: float = 3.2):  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: smaller, searchable
    return plt.subplots(figsize=(width, height))


def histograms(series: dict[str, Sequence[int]], title: str) -> str:
    fig, ax = _figure()
    for name, values in series.items():
        if values:
            ax.hist(list(values), bins=20, alpha=0.55, label=f"{name} (n={len(values)})")
    ax.set_title(title)
    ax.set_xlabel("characters")
    ax.set_ylabel("captions")
    if any(series.values()):
        ax.legend(fontsize=8)
    return _svg(fig)


def bars(counts: dict[str, int | float], title: str, xlabel: str = "") -> str:
    fig, ax = _figure(7.0, max(2.0, 0.28 * len(counts) + 1))
    names = list(counts)
    ax.barh(names, [counts[n] for n in names], color="#4c72b0")
    ax.invert_yaxis()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    return _svg(fig)


def trend(runs: list[str], metrics: dict[str, list[float | None]], title: str) -> str:
    fig, ax = _figure()
    for name, values in metrics.items():
        xs = [i for i, v in enumerate(values) if v is not None]
        ax.plot(xs, [values[i] for i in xs], marker="o", label=name)
    ax.set_xticks(range(len(runs)))
    ax.set_xticklabels(runs, rotation=30, ha="right", fontsize=7)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _svg(fig)
