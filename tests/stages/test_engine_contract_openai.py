"""What reaches the model: caption, bridge and qa through the OpenAI engine against a scripted
OpenAI-compatible server on 127.0.0.1 (fixture answers, no model).

Proves that every rule of the method is in the prompt the server receives, that per-task budgets
and temperatures are sent, that an answer stopped by its budget is retried once with a larger
budget and then recorded for its video, and that an over-long request fails alone while the rest
of its batch goes through. Three videos share the shard:
- ``story`` (two shots, 10 s): answered well everywhere, except its first merge, cut off once;
- ``cutoff`` (one static shot, 4 s): every differential answer is cut off by its budget;
- ``toolong`` (one static shot, 6 s): the server refuses its attention prompts as too long.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from glave_tasks import schemas
from glave_tasks.config import DEFAULT_TASKS, load_config
from glave_tasks.layout import RunLayout
from glave_tasks.runner import run_stage
from glave_tasks.stages import build_stage
from glave_tasks.store import ArtifactStore
from tests.support import synthetic
from tests.support.committed import Committed
from tests.support.openai_server import completion
from tests.support.seed import merge_tables, seed_committed, upstream_from_truth

RUN = "r-contract"
MARK = {10.0: "STORY", 4.0: "CUTOFF", 6.0: "TOOLONG"}  # overview marker by video length

# Phrases each prompt must carry (the method's rules, in our wording).
RULES: dict[str, list[str]] = {
    "overview": ["[a - b]", "every sentence", "setting and background", "events in order", "what causes what",
                 "interactions", "camera", "text shown on screen", "Describe only what the keyframes show"],
    "attention": ["(ID=n)", "Never refer to an object by its number alone", "no outlines", "contour or border colours",
                  "no coordinates", "no JSON", "no frame or keyframe numbers", "no timestamps", "pose",
                  "relational words", "interact", "background", "lighting", "shot type and camera angle",
                  "quoted exactly", "English translation in parentheses", "Overview of the whole video"],
    "differential": ["(ID=n)", "number alone", "no outlines", "no coordinates", "no JSON", "no timestamps",
                     "appeared", "gone", "how the camera moved", "Overview of the whole video"],
    "merge": ["Overview of the whole video", "actions and movements: take them from the first",
              "static detail: take them from the second", "background: from the second", "(ID=n)",
              "number alone", "Never mention contours", "consistent with the overview"],
    "scene_split": ["hard cut always starts a new scene", "transition into the next scene belongs to that next scene",
                    "no gap and no overlap", "scene_hint", "camera_note"],
    "scene_caption": ["appearance, clothing or position", "original language", "English translation",
                      "order they happen", "camera moves", "Never mention keyframe or frame numbers, timestamps"],
    "qa_scene": [*(f"- {d}:" for d in schemas.SCENE_DIMENSIONS), "At most one question per dimension",
                 "only one of them fits"],
    "qa_video": [*(f"- {d}:" for d in schemas.VIDEO_DIMENSIONS), "Up to 3 questions per dimension"],
    "qa_refine": ["atomic", "split it into separate questions", "return no question"],
    "qa_options": ["three wrong ones", "match in form, length", "Exactly one option is correct"],
}
CONTINUITY = "Continue from the earlier scenes"
SINGLE_SCENE = "With a single scene"


def _text(body: dict[str, Any]) -> str:
    return body["messages"][0]["content"][-1]["text"]


def _task(body: dict[str, Any]) -> str:
    if "response_format" in body:
        return body["response_format"]["json_schema"]["name"]
    prompt = _text(body)
    for task, marker in (("overview", "Write a concise overview caption"), ("attention", "You see keyframe"),
                         ("differential", "two consecutive keyframes"), ("merge", "Write one richer description"),
                         ("scene_caption", "Write the caption of this scene")):
        if marker in prompt:
            return task
    raise AssertionError(f"unknown prompt: {prompt[:200]}")


def _video(prompt: str) -> str:
    found = [m for m in MARK.values() if m in prompt]
    return found[0] if found else ""


def _cut(text: str) -> dict[str, Any]:
    out = completion(text)
    out["choices"][0]["finish_reason"] = "length"
    return out


class Script:
    """The fixture answers, by task and video; records what it saw."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.merges_cut: set[str] = set()

    def __call__(self, body: dict[str, Any], n: int) -> tuple[int, Any]:
        task, prompt = _task(body), _text(body)
        video = _video(prompt)
        if task == "overview":
            secs = float(re.search(r"The video lasts ([\d.]+) s", prompt).group(1))
            return 200, completion(f"{MARK[secs]}: a scene on a pale floor [0 - 1]. Things happen [1 - 2].")
        if task == "attention":
            if video == "TOOLONG":
                return 400, {"error": {"message": "This model's maximum context length is 32768 tokens. However, "
                                                  "you requested 40961 tokens.", "type": "BadRequestError", "code": 400}}
            return 200, completion("A red box (ID=1) rests on the left of a pale floor in a wide shot.")
        if task == "differential":
            if video == "CUTOFF":
                return 200, _cut("The grey wall stays the same while the")
            return 200, completion("The red box (ID=1) slides to the right; the camera holds still.")
        if task == "merge":
            with self.lock:
                first = video == "STORY" and video not in self.merges_cut
                self.merges_cut.add(video)
            if first:
                return 200, _cut("The red box (ID=1) slides")
            return 200, completion("The red box (ID=1) slides right across the pale floor; the camera holds still.")
        if task == "scene_split":
            last = int(re.search(r"keyframes 0 to (\d+), in order", prompt).group(1))
            cuts = [int(c) for c in re.findall(r"\d+", prompt.split("hard cuts at keyframes ")[1].split(".")[0])] \
                if "hard cuts at keyframes" in prompt else []
            bounds = [0, *cuts, last + 1]
            scenes = [{"start": a, "end": b - 1, "scene_hint": f"part {i + 1}", "camera_note": "static"}
                      for i, (a, b) in enumerate(zip(bounds, bounds[1:]))]
            return 200, completion(json.dumps({"scenes": scenes}))
        if task == "scene_caption":
            return 200, completion("A man in a blue coat pushes a red box across a pale floor while the camera holds.")
        if task == "qa_scene":
            return 200, completion(json.dumps({"qa": [
                {"dimension": "Count", "question": "How many boxes are on the floor?", "answer": "one"},
                {"dimension": "Description-Human", "question": "What colour is the man's coat?", "answer": "blue"},
                {"dimension": "Camera Shot", "question": "Is the scene filmed in a wide shot or a close-up?",
                 "answer": "a wide shot"}]}))
        if task == "qa_video":
            return 200, completion(json.dumps({"qa": [
                {"dimension": "Time Order", "question": "What does the man do first?", "answer": "he pushes the box"},
                {"dimension": "Causal", "question": "Why does the box move?", "answer": "the man pushes it"}]}))
        if task == "qa_refine":
            q = re.search(r"Question \([^)]*\): (.*)\nAnswer: (.*)\n", prompt)
            return 200, completion(json.dumps({"questions": [{"question": q.group(1), "answer": q.group(2)}]}))
        if task == "qa_options":
            answer = re.search(r"Correct answer: (.*)\n", prompt).group(1)
            # The generator's habit: the right answer always first.
            return 200, completion(json.dumps({"options": [answer, "a green lamp", "nothing at all", "four of them"],
                                               "answer_choice": "A"}))
        raise AssertionError(task)


@pytest.fixture
def contract_run(serve: Any, tmp_path: Path) -> tuple[ArtifactStore, Any, Script]:
    store = ArtifactStore(str(tmp_path / "store"))
    base = load_config(environ={})
    ingest, track, files = [], [], {}
    for vid, gt in [("story", synthetic.two_shot_video(tmp_path / "a.mp4")),
                    ("cutoff", synthetic.static_video(tmp_path / "b.mp4")),
                    ("toolong", synthetic.static_video(tmp_path / "c.mp4", seconds=6.0))]:
        i, t, f = upstream_from_truth(RUN, 0, vid, gt, keyframe_every_s=2.0)
        ingest.append(i), track.append(t), files.update(f)
    seed_committed(store, base, RUN, 0, "ingest", merge_tables(*ingest), files)
    seed_committed(store, base, RUN, 0, "track", merge_tables(*track))
    script = Script()
    server = serve(script)
    config = load_config(environ={}, overrides={
        "store": {"root": str(tmp_path / "store"), "local_cache": str(tmp_path / "cache")},
        "run": {"max_failure_ratio": 1.0},
        "engine": {"backend": "openai", "base_url": server.url, "model": "served", "retries": 0}})
    return store, config, server


def test_rules_budgets_length_stops_and_an_over_long_prompt(contract_run: tuple[ArtifactStore, Any, Any]) -> None:
    store, config, server = contract_run
    layout = RunLayout(RUN)
    caption = run_stage(build_stage("caption", config), store, RUN, 0, show_progress=False)
    assert caption.status == "committed"
    # The over-long attention prompt failed its video alone; the cut-off differentials failed theirs
    # after one retry with twice the budget; the story went through (its cut merge was retried).
    errors = {e["video_id"]: e for e in store.read_table(Committed(store, layout.run_id).table("caption", 0, "errors")).to_pylist()}
    assert errors["toolong"]["reason"] == "prompt_too_long" and "maximum context length" in errors["toolong"]["detail"]
    assert errors["cutoff"]["reason"] == "model_output_truncated"
    assert "after a retry with a larger budget" in errors["cutoff"]["detail"]
    assert caption.marker["videos_ok"] == ["story"]
    bodies = list(server.bodies)
    level = [b for b in bodies if _task(b) in ("attention", "differential")]
    assert {_video(_text(b)) for b in level} == {"STORY", "CUTOFF", "TOOLONG"}  # one batch, all three videos
    cut = [b["max_tokens"] for b in bodies if _task(b) == "differential" and _video(_text(b)) == "CUTOFF"]
    assert sorted(set(cut)) == [1280, 2560]  # the task's budget, then twice it, once per keyframe
    merges = [b["max_tokens"] for b in bodies if _task(b) == "merge"]
    assert sorted(merges) == [1536] * (len(merges) - 1) + [3072]
    rows = store.read_table(Committed(store, layout.run_id).table("caption", 0, "local_captions")).to_pylist()
    story = [r for r in rows if r["video_id"] == "story"]
    assert all(r["text"] and not r["text"].endswith("slides") for r in story)  # nothing cut off is stored
    first = {r["stream"]: r["text"] for r in story if r["keyframe_index"] == 0}
    assert first["different"] == first["attention"] == first["merged"]  # the record's shape for keyframe 0

    bridge = run_stage(build_stage("bridge", config), store, RUN, 0, show_progress=False)
    qa = run_stage(build_stage("qa", config), store, RUN, 0, show_progress=False)
    assert bridge.marker["videos_ok"] == qa.marker["videos_ok"] == ["story"]
    bodies = list(server.bodies)

    # Every rule reaches the model, in every request of its task.
    seen: dict[str, list[str]] = {}
    for b in bodies:
        seen.setdefault(_task(b), []).append(_text(b))
    assert set(RULES) <= set(seen)
    for task, phrases in RULES.items():
        for prompt in seen[task]:
            missing = [p for p in phrases if p not in prompt]
            assert not missing, (task, missing)
    later = [p for p in seen["scene_caption"] if "Captions of the earlier scenes" in p]
    assert later and all(CONTINUITY in p for p in later)
    # The overview sees every keyframe of the video (5 for the story), and each is an image.
    story_ov = [b for b in bodies if _task(b) == "overview" and "lasts 10.0 s" in _text(b)][0]
    assert sum(1 for part in story_ov["messages"][0]["content"] if part["type"] == "image_url") == 5
    # Bridge and QA read captions without object numbers.
    assert all("(ID=" not in p for t in ("scene_caption", "qa_scene", "qa_video") for p in seen[t])

    # Per-task budgets and temperatures are sent: JSON tasks decode greedily.
    for b in bodies:
        expected_t = 0.0 if "response_format" in b else config.engine.sampling.temperature
        assert b["temperature"] == expected_t, _task(b)
    first_budget = {t: min(b["max_tokens"] for b in bodies if _task(b) == t) for t in seen}
    for task in ("overview", "attention", "differential", "merge", "scene_caption", "qa_scene", "qa_video",
                 "qa_refine", "qa_options"):
        assert first_budget[task] == DEFAULT_TASKS[task]["max_tokens"], task
    assert first_budget["scene_split"] <= DEFAULT_TASKS["scene_split"]["max_tokens"]  # sized to the schema

    # The generator always put the answer first; the published letters do not follow it.
    rows = store.read_table(Committed(store, layout.run_id).table("qa", 0, "qa")).to_pylist()
    assert len(rows) >= 5 and len({r["answer_choice"] for r in rows}) >= 2
    for r in rows:
        letter = r["answer_choice"]
        assert r["options"][schemas.ANSWER_LETTERS.index(letter)] == f"{letter}. {r['answer']}"


def test_a_single_scene_video_gets_video_level_questions(serve: Any, tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "store"))
    base = load_config(environ={})
    i, t, f = upstream_from_truth(RUN, 0, "single", synthetic.static_video(tmp_path / "s.mp4", seconds=10.0),
                                  keyframe_every_s=2.0)
    seed_committed(store, base, RUN, 0, "ingest", i, f)
    seed_committed(store, base, RUN, 0, "track", t)
    server = serve(Script())
    config = load_config(environ={}, overrides={
        "store": {"root": str(tmp_path / "store"), "local_cache": str(tmp_path / "cache")},
        "engine": {"backend": "openai", "base_url": server.url, "model": "served", "retries": 0}})
    for stage in ("caption", "bridge", "qa"):
        assert run_stage(build_stage(stage, config), store, RUN, 0, show_progress=False).marker["videos_ok"] == ["single"]
    video_prompts = [_text(b) for b in server.bodies if _task(b) == "qa_video"]
    assert len(video_prompts) == 1 and SINGLE_SCENE in video_prompts[0] and "one continuous scene" in video_prompts[0]
    rows = store.read_table(Committed(store, RUN).table("qa", 0, "qa")).to_pylist()
    assert any(r["scene_index"] is None for r in rows)  # general QA exists for a one-scene video
