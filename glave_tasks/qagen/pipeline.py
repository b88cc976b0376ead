"""QA for a whole shard, one dependency level at a time (generate -> refine -> dedup -> options).

Every level sends the requests of all videos of the shard to the engine together; malformed
answers are retried by :func:`glave_tasks.language.structured.complete` and what stays malformed
fails its video (recorded by the stage), never the shard.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import schemas
from ..language import prompts
from ..language.levels import LevelRunner
from ..language.types import LLMRequest, LLMResponse
from ..language.video_facts import VideoFacts
from . import rules  # noqa: F401 - registers the rules answers of the QA tasks
from .facts import scene_objects
from .models import OptionSet, Refined, SceneQAList, VideoQAList

QA_PROMPTS = ("qa_scene", "qa_video", "qa_refine", "qa_options")


@dataclass
class SceneInput:
    index: int
    frame_start: int
    frame_end: int
    hint: str
    camera_note: str
    caption: str


@dataclass
class VideoInput:
    facts: VideoFacts
    overview: str
    caption: str
    scenes: list[SceneInput]
    tracks: list[dict[str, Any]]


@dataclass
class Draft:
    """One QA on its way through the levels."""

    video_id: str
    scene_index: int | None
    dimension: str
    question: str
    answer: str
    source: str  # the caption the QA came from
    distractors: list[str] = field(default_factory=list)
    spent: list[LLMResponse] = field(default_factory=list)


@dataclass
class QAResult:
    rows: list[dict[str, Any]]
    dropped: dict[str, int]


def _request(task: str, key: tuple[Any, ...], **context: Any) -> LLMRequest:
    return LLMRequest(task=task, prompt=prompts.render(task, **context), context=context,
                      prompt_version=prompts.prompt_version(task), key=key)


def generation_requests(videos: list[VideoInput], max_per_dimension: int) -> list[LLMRequest]:
    all_hints = [s.hint for v in videos for s in v.scenes]
    reqs: list[LLMRequest] = []
    for v in videos:
        f = v.facts
        starts = [k.timestamp_s for k in f.keyframes]
        labels_per_scene = []
        for s in v.scenes:
            t0 = starts[s.frame_start] if s.frame_start < len(starts) else 0.0
            t1 = starts[s.frame_end + 1] if s.frame_end + 1 < len(starts) else float("inf")
            objs = scene_objects(v.tracks, t0, t1, f.width, f.height)
            labels_per_scene.append(sorted({o["label"] for o in objs}))
            reqs.append(_request(
                "qa_scene", (f.video_id, "scene", s.index), overview=v.overview, scene_index=s.index,
                frame_start=s.frame_start, frame_end=s.frame_end, scene_hint=s.hint, camera_note=s.camera_note,
                caption=s.caption, dimensions=schemas.SCENE_DIMENSIONS, objects=objs, other_hints=all_hints))
        reqs.append(_request(
            "qa_video", (f.video_id, "video", None), overview=v.overview, max_per_dimension=max_per_dimension,
            dimensions=schemas.VIDEO_DIMENSIONS, cut_keyframes=f.cut_keyframes,
            scenes=[{"index": s.index, "hint": s.hint, "caption": s.caption, "labels": labels_per_scene[i]}
                    for i, s in enumerate(v.scenes)]))
    return reqs


def _accept(resp: LLMResponse, source: str, max_per_dimension: int, dropped: dict[str, int]) -> list[Draft]:
    """Keep at most one QA per scene dimension (or max_per_dimension per video dimension)."""
    vid, scope, scene = resp.request.key
    allowed = schemas.SCENE_DIMENSIONS if scope == "scene" else schemas.VIDEO_DIMENSIONS
    cap = 1 if scope == "scene" else max_per_dimension
    seen: dict[str, int] = defaultdict(int)
    out = []
    for qa in resp.parsed.qa:
        if qa.dimension not in allowed:
            dropped["unknown_dimension"] += 1
            continue
        if seen[qa.dimension] >= cap:
            dropped["over_dimension_cap"] += 1
            continue
        seen[qa.dimension] += 1
        out.append(Draft(vid, scene, qa.dimension, qa.question.strip(), qa.answer.strip(), source,
                         list(qa.distractors), [resp]))
    return out


def generate_shard(videos: list[VideoInput], runner: LevelRunner, *, max_per_dimension: int,
                   near_duplicates: Callable[[list[str]], list[int]]) -> QAResult:
    dropped: dict[str, int] = defaultdict(int)
    by_id = {v.facts.video_id: v for v in videos}
    # Level 1: every scene and every video of the shard at once.
    drafts: list[Draft] = []
    reqs = generation_requests(videos, max_per_dimension)
    responses = runner.run(reqs, [SceneQAList if r.key[1] == "scene" else VideoQAList for r in reqs])
    for resp in responses:
        if not resp.ok:
            continue
        vid, scope, scene = resp.request.key
        v = by_id[vid]
        source = v.caption if scope == "video" else next(s.caption for s in v.scenes if s.index == scene)
        drafts.extend(_accept(resp, source, max_per_dimension, dropped))
    drafts = [d for d in drafts if d.video_id not in runner.failures]

    # Level 2: refine every QA into atomic questions (or drop it).
    reqs = [_request("qa_refine", (d.video_id, i), caption=d.source, dimension=d.dimension, question=d.question,
                     answer=d.answer) for i, d in enumerate(drafts)]
    refined: list[Draft] = []
    for resp in runner.run(reqs, [Refined] * len(reqs)):
        if not resp.ok:
            continue
        d = drafts[resp.request.key[1]]
        if not resp.parsed.questions:
            dropped["refine_dropped"] += 1
        for atom in resp.parsed.questions:
            refined.append(Draft(d.video_id, d.scene_index, d.dimension, atom.question.strip(), atom.answer.strip(),
                                 d.source, d.distractors if atom.answer.strip() == d.answer else [], [*d.spent, resp]))
    refined = [d for d in refined if d.video_id not in runner.failures]

    # Exact and near-duplicate questions go before options are paid for. Duplicates are judged
    # within one QA set of a video (a scene's QA, or its general QA): "how many boxes are in this
    # scene?" asked of two scenes is two questions.
    kept: list[Draft] = []
    per_set: dict[tuple[str, int | None], list[Draft]] = defaultdict(list)
    for d in refined:
        per_set[(d.video_id, d.scene_index)].append(d)
    for items in per_set.values():
        seen: set[str] = set()
        unique = []
        for d in items:
            key = " ".join(d.question.lower().split())
            if key in seen:
                dropped["duplicate_exact"] += 1
                continue
            seen.add(key)
            unique.append(d)
        near = set(near_duplicates([d.question for d in unique]))
        dropped["duplicate_near"] += len(near)
        kept += [d for i, d in enumerate(unique) if i not in near]

    # Level 3: four options, exactly one correct.
    reqs = [_request("qa_options", (d.video_id, i), caption=d.source, dimension=d.dimension, question=d.question,
                     answer=d.answer, distractors=d.distractors) for i, d in enumerate(kept)]
    rows: list[dict[str, Any]] = []
    counters: dict[tuple[str, str], int] = defaultdict(int)
    for resp in runner.run(reqs, [OptionSet] * len(reqs)):
        if not resp.ok:
            continue
        d = kept[resp.request.key[1]]
        parsed: OptionSet = resp.parsed
        texts = [_unlettered(o) for o in parsed.options]
        if len({t.lower() for t in texts}) < 4 or not all(texts):
            runner.fail(d.video_id, "qa_bad_options", f"options not four distinct texts: {texts}")
            continue
        texts, letter = shuffle_options(texts, schemas.ANSWER_LETTERS.index(parsed.answer_choice), d.video_id,
                                        d.question, d.scene_index)
        scope = "g" if d.scene_index is None else f"s{d.scene_index}"
        n = counters[(d.video_id, scope)]
        counters[(d.video_id, scope)] += 1
        spent = [*d.spent, resp]
        rows.append({
            "video_id": d.video_id, "qa_id": f"{d.video_id}-{scope}-{n}", "scene_index": d.scene_index,
            "dimension": d.dimension, "question": d.question, "answer": d.answer,
            "options": [f"{L}. {t}" for L, t in zip(schemas.ANSWER_LETTERS, texts)],
            "answer_choice": letter,
            **_provenance(spent),
        })
    rows = [r for r in rows if r["video_id"] not in runner.failures]
    return QAResult(rows, dict(dropped))


def shuffle_options(texts: list[str], correct: int, video_id: str, question: str,
                    scope: int | None = None) -> tuple[list[str], str]:
    """Place the correct option at a letter drawn from a hash of the video, the question's scope
    (its scene, or None for the whole video) and the question.

    Generators put the right answer where habit puts it (the reference's lean to A); the letter
    here is uniform over A-D across questions, and the same question of the same video always
    gets the same order (re-runs are byte-identical). The scope is part of the seed because the same
    question is often asked of several scenes ("How many people are in this scene?"): one letter
    for all of them would skew the distribution. The wrong options keep their order."""
    digest = hashlib.sha256(f"{video_id}\x1f{scope}\x1f{question}".encode()).digest()
    target = digest[0] % len(texts)
    wrong = [t for i, t in enumerate(texts) if i != correct]
    ordered = wrong[:target] + [texts[correct]] + wrong[target:]
    return ordered, schemas.ANSWER_LETTERS[target]


def _unlettered(option: str) -> str:
    """An option without a letter prefix a model added anyway ("B. a red car" -> "a red car")."""
    import re

    return re.sub(r"^\s*\(?[A-Da-d][.):]\s+", "", option).strip()


def _provenance(spent: list[LLMResponse]) -> dict[str, Any]:
    last = spent[-1]
    return {
        "generator": last.generator, "model_id": last.model_id, "model_revision": last.model_revision,
        "prompt_version": "+".join(dict.fromkeys(r.request.prompt_version or "" for r in spent)),
        "prompt_tokens": sum(r.prompt_tokens for r in spent), "completion_tokens": sum(r.completion_tokens for r in spent),
        "latency_s": round(sum(r.latency_s for r in spent), 6),
    }
