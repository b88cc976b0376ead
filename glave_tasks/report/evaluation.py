"""The caption-evaluation section of the analysts' report (and the page ``glave evaluate`` writes
beside its tables): judge, headline scores, accuracy per dimension, and run-vs-run comparison.

The judge's label is always shown next to the numbers: an embedded judge's scores measure how
much of each option the caption states, not what an LLM understands from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

import jinja2

from .. import schemas

SECTION = """
<section class="evaluation" id="evaluation-{{ s.name }}">
<h3>{{ s.name }} questions &middot; {{ s.captions }}</h3>
<p class="judge {{ 'embedded' if s.judge.embedded else '' }}">Judge: <b>{{ s.judge.label }}</b>,
{{ s.judge.repeats }} repeat(s) per question, majority vote{% if s.judge.embedded %}
&middot; <b>not comparable with an LLM judge's scores</b>{% endif %}.</p>
<p>{% for k, v in kpis.items() %}<span class="kpi">{{ k }}: <b>{{ v }}</b></span>{% endfor %}</p>
{% if s.skipped.total %}<p class="warn">Not scored: {% for r, n in s.skipped.by_reason.items() %}
{{ n }} {{ r }}{{ ', ' if not loop.last }}{% endfor %}
{% if s.skipped.videos_not_in_run %}(videos not in the captions: {{ s.skipped.videos_not_in_run|join(', ') }})
{% endif %}</p>{% endif %}
<div class="figure" id="plot-eval-dimensions-{{ s.name }}">{{ dim_plot|safe }}</div>
<table><tr><th>dimension</th><th>questions</th><th>accuracy</th><th>E-rate</th>
{% if cmp %}<th>baseline</th><th>delta</th>{% endif %}</tr>
{% for d, r in s.scores.per_dimension.items() %}<tr><td>{{ d }}</td><td>{{ r.questions }}</td>
<td>{{ pct(r.accuracy) }}</td><td>{{ pct(r.e_rate) }}</td>
{% if cmp %}<td>{{ pct(cmp.per_dimension[d].baseline) if d in cmp.per_dimension else '' }}</td>
<td>{{ signed(cmp.per_dimension[d].delta) if d in cmp.per_dimension else '' }}</td>{% endif %}</tr>
{% endfor %}</table>
{% if cmp %}
<h4>Compared with run {{ cmp.baseline_run_id }}</h4>
<p class="{{ 'fail' if cmp.regressed else ('warn' if not cmp.comparable else 'pass') }}">Accuracy {{ pct(cmp.accuracy) }} vs
{{ pct(cmp.baseline_accuracy) }} ({{ signed(cmp.delta) }}; allowed drop {{ pct(cmp.margin) }}): <b>{{ cmp.status }}</b>
{% if not cmp.comparable %}(different judge or question set){% endif %}</p>
<div class="figure" id="plot-eval-compare-{{ s.name }}">{{ cmp_plot|safe }}</div>
{% else %}<p>No baseline evaluation with this question set yet.</p>{% endif %}
<table><tr><th>video</th><th>questions</th><th>accuracy</th><th>E-rate</th></tr>
{% for v, r in s.scores.per_video.items() %}<tr><td>{{ v }}</td><td>{{ r.questions }}</td>
<td>{{ pct(r.accuracy) }}</td><td>{{ pct(r.e_rate) }}</td></tr>{% endfor %}</table>
</section>
"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>glave evaluation {{ title }}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;font-size:13px}
.pass{color:#176317}.warn{background:#fff5cc}.fail{background:#fdd}.kpi{display:inline-block;margin-right:2em;font-size:18px}
.judge.embedded{background:#eef3ff;padding:4px}
</style></head><body><h1>glave caption evaluation {{ title }}</h1>
{{ body|safe }}
</body></html>
"""


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _signed(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:+.1f} pts"


def _dimension_order(names: Sequence[str]) -> list[str]:
    known = [d for d in schemas.ALL_DIMENSIONS if d in names]
    return known + sorted(set(names) - set(known))


def bar_chart(series: dict[str, dict[str, float | None]], names: Sequence[str], title: str) -> str:
    """Horizontal bars of accuracy (0-1) per dimension, one bar per series, as inline SVG.

    Drawn by hand (no matplotlib): ``glave evaluate`` also runs in the LLM image, which has none.
    """
    colours = ["#4c72b0", "#bbbbbb", "#dd8452"]
    label_w, plot_w, bar_h, gap = 170, 420, 12, 8
    group_h = bar_h * len(series) + gap
    height = 40 + group_h * len(names) + 20 * len(series)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + plot_w + 70}" height="{height}" '
           f'font-family="sans-serif" font-size="11" role="img"><title>{escape(title)}</title>',
           f'<text x="0" y="14" font-size="13">{escape(title)}</text>']
    for i, name in enumerate(names):
        y = 28 + i * group_h
        out.append(f'<text x="{label_w - 6}" y="{y + group_h / 2}" text-anchor="end">{escape(name)}</text>')
        for j, values in enumerate(series.values()):
            v = values.get(name)
            w = 0 if v is None else max(0.0, min(1.0, v)) * plot_w
            yy = y + j * bar_h
            out.append(f'<rect x="{label_w}" y="{yy}" width="{w:.1f}" height="{bar_h - 2}" fill="{colours[j % 3]}"/>')
            out.append(f'<text x="{label_w + w + 4:.1f}" y="{yy + bar_h - 3}">{_pct(v)}</text>')
    y = 28 + group_h * len(names) + 6
    for j, label in enumerate(series):
        out.append(f'<rect x="{label_w}" y="{y + 18 * j}" width="10" height="10" fill="{colours[j % 3]}"/>'
                   f'<text x="{label_w + 14}" y="{y + 18 * j + 9}">{escape(label)}</text>')
    out.append("</svg>")
    return "".join(out)


def section_html(summary: dict[str, Any]) -> str:
    sc = summary["scores"]
    names = _dimension_order(list(sc["per_dimension"]))
    this = str(summary.get("run_id") or "these captions")
    dim_plot = bar_chart({this: {d: r["accuracy"] for d, r in sc["per_dimension"].items()}}, names,
                         f"Accuracy per dimension ({summary['judge']['backend']} judge)")
    cmp = summary.get("comparison")
    cmp_plot = ""
    if cmp:
        per = cmp["per_dimension"]
        cmp_plot = bar_chart({this: {d: r["current"] for d, r in per.items()},
                              f"{cmp['baseline_run_id']} (baseline)": {d: r["baseline"] for d, r in per.items()}},
                             _dimension_order(list(per)), "Accuracy per dimension, run vs baseline")
    kpis = {"accuracy": _pct(sc["accuracy"]), "E-rate": _pct(sc["e_rate"]), "questions": sc["questions"],
            "unparsable": sc["unparsable"], "ties": sc["ties"], "vote accuracy": _pct(sc["vote_accuracy"])}
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(SECTION).render(s=summary, kpis=kpis, dim_plot=dim_plot, cmp=cmp, cmp_plot=cmp_plot,
                                           pct=_pct, signed=_signed)


def evaluation_page(summary: dict[str, Any]) -> str:
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    title = f"{summary.get('run_id') or summary['captions']} ({summary['name']})"
    return env.from_string(PAGE).render(title=title, body=section_html(summary))


def evaluation_sections(summaries: Sequence[dict[str, Any]]) -> str:
    """The report's section: every evaluation stored with the run, or nothing when there is none."""
    if not summaries:
        return ""
    return "<h2>Caption evaluation</h2>\n" + "\n".join(section_html(s) for s in sorted(summaries, key=lambda s: s["name"]))
