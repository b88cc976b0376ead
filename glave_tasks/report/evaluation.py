"""The caption-evaluation section of the analysts' report (and the page ``glave evaluate`` writes
beside its tables): judge, headline scores, accuracy per dimension, and run-vs-run comparison.

The judge's label is always shown next to the numbers: an embedded judge's scores measure how
much of each option the caption states, not what an LLM understands from it.
"""

from __future__ import annotations

from typing import Any, Sequence

import jinja2

from .. import schemas
from . import plots

SECTION = """
<section class="evaluation" id="evaluation-{{ s.name }}">
<h3>{{ s.name }} questions &middot; {{ s.captions }}</h3>
<p class="judge {{ 'embedded' if s.judge.embedded else '' }}">Judge: <b>{{ s.judge.label }}</b>,
{{ s.judge.repeats }} repeat(s) per question, majority vote{% if s.judge.embedded %}
&middot; <b>not comparable with an LLM judge's scores</b>{% endif %}.</p>
<p>{% for k, v in kpis.items() %}<span class="kpi">{{ k }}: <b>{{ v }}</b></span>{% endfor %}</p>
{% if s.skipped.total %}<p class="warn">Not scored: {% for r, n in s.skipped.by_reason.items() %}{{ n }} {{ r }}{{ ', ' if not loop.last }}{% endfor %}
{% if s.skipped.videos_not_in_run %}(videos not in the captions: {{ s.skipped.videos_not_in_run|join(', ') }}){% endif %}</p>{% endif %}
<div class="figure" id="plot-eval-dimensions-{{ s.name }}">{{ dim_plot|safe }}</div>
<table><tr><th>dimension</th><th>questions</th><th>accuracy</th><th>E-rate</th>{% if cmp %}<th>baseline</th><th>delta</th>{% endif %}</tr>
{% for d, r in s.scores.per_dimension.items() %}<tr><td>{{ d }}</td><td>{{ r.questions }}</td><td>{{ pct(r.accuracy) }}</td><td>{{ pct(r.e_rate) }}</td>
{% if cmp %}<td>{{ pct(cmp.per_dimension[d].baseline) if d in cmp.per_dimension else '' }}</td><td>{{ signed(cmp.per_dimension[d].delta) if d in cmp.per_dimension else '' }}</td>{% endif %}</tr>
{% endfor %}</table>
{% if cmp %}
<h4>Compared with run {{ cmp.baseline_run_id }}</h4>
<p class="{{ 'fail' if cmp.regressed else ('warn' if not cmp.comparable else 'pass') }}">Accuracy {{ pct(cmp.accuracy) }} vs
{{ pct(cmp.baseline_accuracy) }} ({{ signed(cmp.delta) }}; allowed drop {{ pct(cmp.margin) }}): <b>{{ cmp.status }}</b>
{% if not cmp.comparable %}(different judge or question set){% endif %}</p>
<div class="figure" id="plot-eval-compare-{{ s.name }}">{{ cmp_plot|safe }}</div>
{% else %}<p>No baseline evaluation with this question set yet.</p>{% endif %}
<table><tr><th>video</th><th>questions</th><th>accuracy</th><th>E-rate</th></tr>
{% for v, r in s.scores.per_video.items() %}<tr><td>{{ v }}</td><td>{{ r.questions }}</td><td>{{ pct(r.accuracy) }}</td><td>{{ pct(r.e_rate) }}</td></tr>{% endfor %}</table>
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


def comparison_plot(per_dimension: dict[str, dict[str, float | None]], current: str, baseline: str) -> str:
    """Grouped horizontal bars: accuracy per dimension, this run beside the baseline."""
    fig, ax = plots._figure(7.0, max(2.2, 0.36 * len(per_dimension) + 1))
    names = _dimension_order(list(per_dimension))
    ys = range(len(names))
    cur = [per_dimension[n].get("current") or 0.0 for n in names]
    base = [per_dimension[n].get("baseline") or 0.0 for n in names]
    ax.barh([y - 0.2 for y in ys], cur, height=0.4, color="#4c72b0", label=f"{current}")
    ax.barh([y + 0.2 for y in ys], base, height=0.4, color="#bbbbbb", label=f"{baseline} (baseline)")
    ax.set_yticks(list(ys))
    ax.set_yticklabels(names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("accuracy")
    ax.set_title("Accuracy per dimension, run vs baseline")
    ax.legend(fontsize=8)
    return plots._svg(fig)


def section_html(summary: dict[str, Any]) -> str:
    sc = summary["scores"]
    dims = {d: summary["scores"]["per_dimension"][d]["accuracy"] or 0.0 for d in _dimension_order(list(sc["per_dimension"]))}
    dim_plot = plots.bars(dims, f"Accuracy per dimension ({summary['judge']['backend']} judge)", "accuracy")
    cmp = summary.get("comparison")
    cmp_plot = comparison_plot(cmp["per_dimension"], str(summary.get("run_id") or "this"), str(cmp["baseline_run_id"])) if cmp else ""
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
