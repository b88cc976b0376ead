"""Model-based checks over GLaVE records: answer/option agreement and answerability through
sentence embeddings, tracked-object coverage, a hallucination proxy, motion-vs-detail balance,
and exact/near-duplicate questions."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from .. import schemas
from . import embeddings, lexicon
from .record_format import option_text
from .results import CheckResult
from .thresholds import CheckSpec

_NORM = re.compile(r"[^a-z0-9 ]+")
OVERLAP_FLOOR = 0.5  # answerability: share of answer words in the caption that settles it without embeddings


def norm(text: Any) -> str:
    return " ".join(_NORM.sub(" ", str(text or "").lower()).split())


def _option_pending(qa: list[dict[str, Any]]) -> tuple[list[bool | None], list[int]]:
    """Verdicts decided by an exact textual match, and the QA left for embeddings."""
    verdicts: list[bool | None] = [None] * len(qa)
    pending: list[int] = []
    for i, q in enumerate(qa):
        opts, letter = q["options"], q["answer_choice"]
        if len(opts) != 4 or letter not in schemas.ANSWER_LETTERS or not q["answer"]:
            continue
        texts = [norm(option_text(o)) for o in opts]
        answer = norm(q["answer"])
        if answer in texts:
            verdicts[i] = texts[schemas.ANSWER_LETTERS.index(letter)] == answer
        else:
            pending.append(i)
    return verdicts, pending


def _option_texts(q: dict[str, Any]) -> list[str]:
    """The answer, then its four options: what option agreement embeds for one QA."""
    return [str(q["answer"]), *(option_text(o) for o in q["options"])]


def option_agreement(qa: list[dict[str, Any]], model: str, floor: float = 0.5) -> tuple[list[bool | None], list[str]]:
    """Per QA: True when the option at the answer letter is the one closest to the Answer text.

    None where the QA is too malformed to judge (other checks report that). An exact textual match
    decides without embeddings; otherwise the letter's option must be the most similar option and
    at least ``floor`` similar.
    """
    verdicts, pending = _option_pending(qa)
    notes: list[str] = []
    if pending:
        flat = [t for i in pending for t in _option_texts(qa[i])]
        vecs = embeddings.encode(flat, model).reshape(len(pending), 5, -1)
        for k, i in enumerate(pending):
            sims = vecs[k, 1:] @ vecs[k, 0]
            pick = schemas.ANSWER_LETTERS.index(qa[i]["answer_choice"])
            verdicts[i] = bool(int(sims.argmax()) == pick and float(sims[pick]) >= floor)
    for i, v in enumerate(verdicts):
        if v is False and len(notes) < 5:
            notes.append(f"{qa[i]['qa_uid']}: answer {str(qa[i]['answer'])[:60]!r} vs option {qa[i]['answer_choice']}")
    return verdicts, notes


def _answerability_pending(qa: list[dict[str, Any]], sources: dict[tuple[str, str], str],
                           overlap_floor: float) -> tuple[list[bool | None], list[tuple[int, list[str]]]]:
    """Verdicts decided by word overlap, and (QA, caption sentences) left for embeddings."""
    verdicts: list[bool | None] = [None] * len(qa)
    pairs: list[tuple[int, list[str]]] = []
    for i, q in enumerate(qa):
        caption = sources.get((q["video_id"], q["scope"]))
        if not caption or not q["answer"] or not q["question"]:
            continue
        answer_words = {w for w in lexicon.words(str(q["answer"])) if len(w) > 2}
        caption_words = set(lexicon.words(caption))
        if answer_words and len(answer_words & caption_words) / len(answer_words) >= overlap_floor:
            verdicts[i] = True
            continue
        pairs.append((i, lexicon.sentences(caption) or [caption]))
    return verdicts, pairs


def _claim(q: dict[str, Any]) -> str:
    return f"{q['question']} {q['answer']}"


def answerability(qa: list[dict[str, Any]], sources: dict[tuple[str, str], str], model: str,
                  sim_floor: float = 0.35, overlap_floor: float = OVERLAP_FLOOR) -> tuple[list[bool | None], list[str]]:
    """Per QA: is the answer supported by the caption it came from (scene caption, or the video
    caption for general QA)? Supported when most answer words occur in the caption, or when the
    question+answer is semantically close to one of the caption's sentences. Every distinct text
    (a caption's sentences recur for each of its QA) is embedded once."""
    verdicts, pairs = _answerability_pending(qa, sources, overlap_floor)
    if pairs:
        texts = list(dict.fromkeys(t for i, sents in pairs for t in (_claim(qa[i]), *sents)))
        index = {t: k for k, t in enumerate(texts)}
        vecs = embeddings.encode(texts, model)
        for i, sents in pairs:
            sims = vecs[[index[s] for s in sents]] @ vecs[index[_claim(qa[i])]]
            verdicts[i] = bool(float(sims.max()) >= sim_floor)
    notes = [f"{qa[i]['qa_uid']}: {str(qa[i]['question'])[:80]!r}" for i, v in enumerate(verdicts) if v is False][:5]
    return verdicts, notes


def duplicates(qa: list[dict[str, Any]], threshold: float, model: str) -> tuple[int, int, list[str]]:
    """(exact, near) duplicate question counts within each QA set of a video (one scene's QA, or
    the general QA): the same question about two different scenes is not a duplicate."""
    by_video: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, q in enumerate(qa):
        if q["question"]:
            by_video[(q["video_id"], q["scope"])].append(i)
    exact = near = 0
    notes: list[str] = []
    for idx in by_video.values():
        seen: set[str] = set()
        unique: list[int] = []
        for i in idx:
            key = norm(qa[i]["question"])
            if key in seen:
                exact += 1
                notes.append(f"exact: {qa[i]['qa_uid']} {str(qa[i]['question'])[:60]!r}")
            else:
                seen.add(key)
                unique.append(i)
        dropped = embeddings.near_duplicates([str(qa[i]["question"]) for i in unique], threshold, model)
        near += len(dropped)
        notes += [f"near: {qa[unique[d]]['qa_uid']} {str(qa[unique[d]]['question'])[:60]!r}" for d in dropped[:3]]
    return exact, near, notes[:8]


def track_coverage(captions: list[dict[str, Any]], track_ids: dict[str, set[int]] | None) -> tuple[float | None, str]:
    """Share of tracked IDs referenced as (ID=n) in merged captions. Without tracker data (external
    files) the IDs the differential and attention streams mention stand in for the tracked set."""
    merged: dict[str, set[int]] = defaultdict(set)
    seen_streams: dict[str, set[int]] = defaultdict(set)
    for c in captions:
        ids = {int(x) for x in lexicon.ID_TAG.findall(c["text"] or "")}
        if c["kind"] == "merged":
            merged[c["video_id"]] |= ids
        elif c["kind"] in ("different", "attention"):
            seen_streams[c["video_id"]] |= ids
    universe = track_ids if track_ids is not None else seen_streams
    total = sum(len(v) for v in universe.values())
    if total == 0:
        return None, "no tracked objects to reference"
    hit = sum(len(ids & merged.get(vid, set())) for vid, ids in universe.items())
    source = "tracker" if track_ids is not None else "differential/attention streams"
    return hit / total, f"{hit}/{total} tracked IDs referenced in merged captions (IDs from {source})"


def hallucination(captions: list[dict[str, Any]], labels: dict[str, set[str]] | None) -> tuple[float | None, str]:
    """Share of object words in merged and scene captions that no detector/tracker label of the
    same video confirms. Needs tracker labels: external files without them are skipped."""
    if labels is None:
        return None, "no detector/tracker labels available"
    mentions = unseen = 0
    examples: dict[str, int] = defaultdict(int)
    for c in captions:
        if c["kind"] not in ("merged", "scene", "caption"):
            continue
        seen = {label.lower() for label in labels.get(c["video_id"], set())}
        for w in lexicon.words(c["text"] or ""):
            confirm = lexicon.OBJECT_WORDS.get(w)
            if confirm is None:
                continue
            mentions += 1
            if not (confirm & seen) and w not in seen and w.rstrip("s") not in seen:
                unseen += 1
                examples[w] += 1
    if mentions == 0:
        return 0.0, "no object words in captions"
    top = ", ".join(f"{w}x{n}" for w, n in sorted(examples.items(), key=lambda kv: -kv[1])[:8])
    return unseen / mentions, f"{unseen}/{mentions} object words unconfirmed" + (f": {top}" if top else "")


def motion_detail(captions: list[dict[str, Any]]) -> tuple[float | None, str]:
    """Share of merged captions (2+ sentences) whose sentences are all actions or all attributes."""
    judged = lopsided = 0
    shares = []
    for c in captions:
        if c["kind"] != "merged":
            continue
        sents = lexicon.sentences(c["text"] or "")
        if len(sents) < 2:
            continue
        share = sum(lexicon.is_action(s) for s in sents) / len(sents)
        shares.append(share)
        judged += 1
        lopsided += share in (0.0, 1.0)
    if not judged:
        return None, "no merged caption with two or more sentences"
    return lopsided / judged, f"mean action share {sum(shares) / judged:.2f} over {judged} merged captions"


def caption_sources(captions: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """(video, QA scope) -> the caption its QA are answered from: scene caption, or video caption."""
    sources = {(c["video_id"], f"scene{c['index']}"): c["text"] for c in captions if c["kind"] == "scene" and c["text"]}
    sources.update({(c["video_id"], "general"): c["text"] for c in captions if c["kind"] == "caption" and c["text"]})
    return sources


def embedding_texts(frames: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    """Per video, every text :func:`run` embeds for it (what the ``embeddings`` table stores)."""
    qa = frames["qa"]
    out: dict[str, list[str]] = defaultdict(list)
    _, pending = _option_pending(qa)
    for i in pending:
        out[qa[i]["video_id"]] += _option_texts(qa[i])
    _, pairs = _answerability_pending(qa, caption_sources(frames["captions"]), OVERLAP_FLOOR)
    for i, sents in pairs:
        out[qa[i]["video_id"]] += [_claim(qa[i]), *sents]
    for q in qa:
        if q["question"]:
            out[q["video_id"]].append(str(q["question"]))
    return {vid: list(dict.fromkeys(texts)) for vid, texts in out.items()}


def run(frames: dict[str, list[dict[str, Any]]], specs: dict[str, CheckSpec], *, model: str,
        near_threshold: float, track_ids: dict[str, set[int]] | None = None,
        labels: dict[str, set[str]] | None = None) -> list[CheckResult]:
    qa, captions = frames["qa"], frames["captions"]
    out: list[CheckResult] = []
    verdicts, notes = option_agreement(qa, model)
    judged = [v for v in verdicts if v is not None]
    out.append(CheckResult.of(specs["qa.option_matches_answer"], (judged.count(False) / len(judged)) if judged else None,
                              f"{judged.count(False)}/{len(judged)} disagree; " + "; ".join(notes)))
    verdicts, notes = answerability(qa, caption_sources(captions), model)
    judged = [v for v in verdicts if v is not None]
    out.append(CheckResult.of(specs["qa.answerable"], (judged.count(False) / len(judged)) if judged else None,
                              f"{judged.count(False)}/{len(judged)} not supported; " + "; ".join(notes)))
    exact, near, notes = duplicates(qa, near_threshold, model)
    n = sum(1 for q in qa if q["question"])
    out.append(CheckResult.of(specs["qa.duplicates_exact"], exact / n if n else None, f"{exact}/{n}; " + "; ".join(n_ for n_ in notes if n_.startswith("exact"))))
    out.append(CheckResult.of(specs["qa.duplicates_near"], near / n if n else None, f"{near}/{n} at cosine >= {near_threshold}; " + "; ".join(n_ for n_ in notes if n_.startswith("near"))))
    value, detail = track_coverage(captions, track_ids)
    out.append(CheckResult.of(specs["captions.track_coverage"], value, detail))
    value, detail = hallucination(captions, labels)
    out.append(CheckResult.of(specs["captions.hallucination"], value, detail))
    value, detail = motion_detail(captions)
    out.append(CheckResult.of(specs["captions.motion_detail_balance"], value, detail))
    return out
