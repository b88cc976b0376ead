"""Every quality check, what its value means, and its default thresholds.

A check's value is either a *badness* (share of bad rows: higher is worse, ``direction="max"``)
or a *goodness* (coverage: lower is worse, ``direction="min"``). ``validate.checks.<name>`` in the
config overrides warn/fail/critical field by field; a critical check that fails blocks publish.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from ..config import ValidateConfig

Status = Literal["pass", "warn", "fail", "skip"]


@dataclass(frozen=True)
class CheckSpec:
    name: str
    table: str
    description: str
    direction: Literal["max", "min"] = "max"
    warn: float | None = None
    fail: float | None = None
    critical: bool = False

    def status(self, value: float | None) -> Status:
        if value is None:
            return "skip"
        def worse(v: float, t: float) -> bool:
            return v > t if self.direction == "max" else v < t

        if self.fail is not None and worse(value, self.fail):
            return "fail"
        if self.warn is not None and worse(value, self.warn):
            return "warn"
        return "pass"


DEFAULTS: dict[str, CheckSpec] = {s.name: s for s in [
    # Structure (Great Expectations over the record frames). Value: share of bad rows.
    CheckSpec("record.keys", "videos", "every record has all GLaVE-1.2M keys", warn=0, fail=0, critical=True),
    CheckSpec("record.streams_aligned", "videos", "different/attention/merged have one entry per keyframe", warn=0, fail=0, critical=True),
    CheckSpec("videos.keyframes_per_video", "videos", "at least one keyframe per video", warn=0, fail=0, critical=True),
    CheckSpec("videos.scenes_per_video", "videos", "at least one scene, at most one per keyframe", warn=0, fail=0, critical=True),
    CheckSpec("videos.qa_per_video", "videos", "at least one QA per video", warn=0, fail=0.5),
    CheckSpec("scenes.frame_range", "scenes", "scene frame ranges are ordered and inside the keyframes", warn=0, fail=0, critical=True),
    CheckSpec("captions.non_empty", "captions", "no empty caption", warn=0, fail=0, critical=True),
    CheckSpec("captions.length_bounds", "captions", "caption lengths within validate.caption_min/max_chars", warn=0, fail=0.1),
    CheckSpec("qa.fields_present", "qa", "question, answer and dimension present", warn=0, fail=0, critical=True),
    CheckSpec("qa.options_count", "qa", "exactly four options A-D", warn=0, fail=0, critical=True),
    CheckSpec("qa.answer_letter", "qa", "answer letter in A-D", warn=0, fail=0, critical=True),
    CheckSpec("qa.dimension_allowed", "qa", "dimension in the 17 GLaVE dimensions", warn=0, fail=0, critical=True),
    CheckSpec("qa.unique_ids", "qa", "QA ids unique", warn=0, fail=0, critical=True),
    CheckSpec("qa.option_format", "qa", "options are written 'A. ...', 'B. ...' in order", warn=0, fail=0.05),
    CheckSpec("qa.dimension_coverage", "qa", "share of the 17 dimensions with at least one QA", direction="min", warn=0.25),
    # Model-based (glave_tasks/quality/semantic.py).
    CheckSpec("qa.option_matches_answer", "qa", "the option at the answer letter is the one that agrees with the Answer text (embeddings)", warn=0, fail=0.02, critical=True),
    CheckSpec("qa.answerable", "qa", "share of QA not supported by the caption they came from", warn=0.3, fail=0.6),
    CheckSpec("qa.duplicates_exact", "qa", "share of questions repeated verbatim within a video", warn=0, fail=0.02),
    CheckSpec("qa.duplicates_near", "qa", "share of questions near-duplicating another of the same video (embeddings)", warn=0.05, fail=0.2),
    CheckSpec("captions.track_coverage", "captions", "share of tracked IDs referenced as (ID=n) in merged captions", direction="min", warn=0.5, fail=0.2),
    CheckSpec("captions.hallucination", "captions", "share of object words in captions that no detector/tracker label saw", warn=0.2, fail=0.5),
    CheckSpec("captions.motion_detail_balance", "captions", "share of merged captions that are all-action or all-attribute", warn=0.6, fail=0.95),
]}


def resolve(config: ValidateConfig) -> dict[str, CheckSpec]:
    """Defaults with the config's overrides applied (only the fields the config sets)."""
    out = dict(DEFAULTS)
    for name, override in config.checks.items():
        base = out.get(name) or CheckSpec(name, "custom", "configured check")
        out[name] = replace(base, **{f: getattr(override, f) for f in override.model_fields_set})
    return out


def table_spec(table: str) -> CheckSpec:
    """Spec of the per-table structural suite over a raw run table (schema, nulls, ranges, unique ids)."""
    return CheckSpec(f"table.{table}", table, f"{table}: schema, non-null columns, ranges, unique keys",
                     warn=0, fail=0, critical=True)
