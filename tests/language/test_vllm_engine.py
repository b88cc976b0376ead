"""The real vLLM engine (in ``.venv-llm``) on a tiny random Qwen2-VL-style model built offline.

The text is gibberish; what is specified here is the engine path: image prompts, whole-list
batches, JSON-schema constrained answers validated with pydantic, retries of malformed answers,
provenance on every row, and the caption/bridge stages batching by dependency level. One engine
serves every scenario (start-up costs tens of seconds on CPU).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from glave_tasks.store import ArtifactStore
from tests.support import synthetic
from tests.support.committed import Committed
from tests.support.llm_env import build_tiny_model, run_llm
from tests.support.seed import merge_tables, seed_committed, upstream_from_truth

pytestmark = pytest.mark.slow
RUN = "r-vllm"


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from glave_tasks.config import load_config

    tmp = tmp_path_factory.mktemp("vllm")
    model = build_tiny_model(tmp / "model")
    store = ArtifactStore(str(tmp / "store"))
    config = load_config(environ={})
    ingest, track, files = [], [], {}
    for vid, gt, kw in [("twoshot", synthetic.two_shot_video(tmp / "a.mp4"), {"keyframe_every_s": 2.0}),
                        ("static", synthetic.static_video(tmp / "b.mp4"), {"keyframe_every_s": 2.0}),
                        ("single", synthetic.static_video(tmp / "c.mp4"), {"max_keyframes": 1})]:
        i, t, f = upstream_from_truth(RUN, 0, vid, gt, **kw)
        ingest.append(i), track.append(t), files.update(f)
    seed_committed(store, config, RUN, 0, "ingest", merge_tables(*ingest), files)
    seed_committed(store, config, RUN, 0, "track", merge_tables(*track))
    out = tmp / "results.json"
    run_llm("-m", "tests.support.vllm_scenarios", str(model), str(tmp / "store"), RUN, str(out), timeout=900)
    data = json.loads(out.read_text())
    data["store"] = store
    return data


def test_image_and_text_prompts_go_through_one_batch_with_provenance(scenario: dict[str, Any]) -> None:
    plain = {r["key"]: r for r in scenario["plain"]}
    assert all(r["ok"] and r["generator"] == "vllm" for r in plain.values())
    assert {r["model_id"] for r in plain.values()} == {"tiny-qwen2-vl"}
    assert {r["model_revision"] for r in plain.values()} == {"test-rev"}
    assert plain[0]["prompt_version"] == "t@1"
    # Images become vision tokens in the prompt: two images cost more than one, one more than none.
    assert plain[1]["prompt_tokens"] > plain[0]["prompt_tokens"] > plain[2]["prompt_tokens"] > 0
    assert 0 < plain[3]["completion_tokens"] <= 5, "per-request max_tokens is honoured"
    assert all(r["latency_s"] > 0 for r in plain.values())


def test_json_schema_answers_are_parsed_and_validated_in_one_batch(scenario: dict[str, Any]) -> None:
    s = scenario["structured"]
    assert s["batches"][0] == ["colour"] * 6, "all six requests went to the engine together"
    ok = [a for a in s["answers"] if a["ok"]]
    assert len(ok) == 6, s["answers"]
    for a in ok:
        assert set(a["parsed"]) == {"name", "count"}
        assert 0 <= a["parsed"]["count"] <= 99 and len(a["parsed"]["name"]) <= 12
        assert json.loads(a["text"], strict=False) == a["parsed"]


def test_malformed_answers_are_retried_as_a_batch_then_reported(scenario: dict[str, Any]) -> None:
    r = scenario["retries"]
    # Attempt 0 holds all four; the two that can never validate are retried together, twice.
    assert [len(b) for b in r["batches"]] == [4, 2, 2]
    answers = r["answers"]
    assert [a["ok"] for a in answers] == [True, False, True, False]
    assert answers[1]["error"] == "malformed_model_output" and answers[1]["attempts"] == 3
    assert answers[0]["attempts"] == 1
    assert answers[1]["completion_tokens"] > answers[0]["completion_tokens"], "tokens of every attempt are counted"


def test_caption_stage_batches_by_dependency_level_and_records_provenance(scenario: dict[str, Any]) -> None:
    st = scenario["stages"]
    batches = st["caption_batches"]
    # twoshot: 5 keyframes (2 s apart over 10 s); static: 2; single: 1 -> 8 keyframes, 3 videos.
    # At 4 images a prompt, twoshot's overview is written in two parts (keyframes 0-3, 4) and
    # joined by a text-only request: every keyframe is seen. A random model sometimes ends an
    # answer at once (empty): that request alone is re-sent in a batch of its own level.
    levels = [{"overview"}, {"overview_merge"}, {"attention", "differential"}, {"merge"}]
    firsts, level = [], -1
    for batch in batches:
        if level + 1 < len(levels) and set(batch) <= levels[level + 1]:
            level += 1
            firsts.append(batch)
        else:
            assert set(batch) <= levels[level], f"batch {batch} out of dependency order"
    assert len(firsts) == len(levels), "one batch per level, in order"
    assert firsts[0] == ["overview"] * 4 and firsts[1] == ["overview_merge"]
    assert firsts[2].count("attention") == 8 and firsts[2].count("differential") == 5
    assert firsts[3] == ["merge"] * 5
    assert st["caption"]["videos_failed"] == 0
    store: ArtifactStore = scenario["store"]
    rows = store.read_table(Committed(store, RUN).table("caption", 0, "local_captions")).to_pylist()
    # Keyframe 0 has the attention stream only; its "different" and "merged" entries repeat it
    # (the reference record's shape) and cost no tokens of their own.
    generated = [r for r in rows if not (r["stream"] in ("different", "merged") and r["keyframe_index"] == 0)]
    assert all(r["generator"] == "vllm" and r["model_id"] == "tiny-qwen2-vl" for r in rows)
    assert all(r["prompt_tokens"] > 0 and r["completion_tokens"] > 0 and r["prompt_version"] for r in generated)
    overviews = store.read_table(Committed(store, RUN).table("caption", 0, "overviews")).to_pylist()
    assert {r["prompt_version"] for r in overviews} <= {"overview@2", "overview_merge@1"}
    assert "overview@2" in {r["prompt_version"] for r in overviews}


def test_bridge_stage_splits_scenes_under_schema_and_captions_scenes_in_rounds(scenario: dict[str, Any]) -> None:
    st = scenario["stages"]
    assert "reason" not in st["bridge"], f"bridge shard failed: {st['bridge']}"
    batches = st["bridge_batches"]
    split = [b for b in batches if b and b[0] == "scene_split"]
    assert split[0] == ["scene_split"] * 3, "one split request per video, all in one batch"
    rounds = [b for b in batches if b and b[0] == "scene_caption"]
    assert rounds and len(rounds[0]) == 3 - st["bridge"]["videos_failed"]
    store: ArtifactStore = scenario["store"]
    scenes = store.read_table(Committed(store, RUN).table("bridge", 0, "scenes")).to_pylist()
    videos = store.read_table(Committed(store, RUN).table("bridge", 0, "video_captions")).to_pylist()
    ok = set(st["bridge"]["videos_ok"])
    assert ok == {v["video_id"] for v in videos}
    for vid in ok:
        mine = sorted((s for s in scenes if s["video_id"] == vid), key=lambda s: s["scene_index"])
        # Repaired or not, the scenes cover the keyframes in order without gaps.
        assert mine[0]["frame_start"] == 0
        assert all(b["frame_start"] == a["frame_end"] + 1 for a, b in zip(mine, mine[1:]))
        if vid == "twoshot":
            assert any(s["frame_start"] == 3 for s in mine), "the shot cut (keyframe 3) starts a scene"
    failures = st["bridge"]["failures"]
    assert set(failures) <= {"malformed_model_output", "invalid_scene_split"}
