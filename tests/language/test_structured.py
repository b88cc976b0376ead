"""Model-layer pieces that need no model: prompts, scene-split repair, weights from S3, rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from glave_tasks.captionbridge.scenes import SceneSpan, SceneSplit, repair_scenes, strip_ids
from glave_tasks.config import EngineConfig, S3Options
from glave_tasks.errors import ConfigError, VideoFailure
from glave_tasks.language import LLMRequest, build_engine, complete, engine_ids, prompts
from glave_tasks.weights import DONE, resolve_weights


def _split(*spans: tuple[int, int]) -> SceneSplit:
    return SceneSplit(scenes=[SceneSpan(start=a, end=b, scene_hint="h", camera_note="c") for a, b in spans])


def test_every_prompt_template_is_versioned_and_renders() -> None:
    names = sorted(p.stem for p in prompts.PROMPT_DIR.glob("*.j2"))
    assert {"overview", "attention", "differential", "merge", "scene_split", "scene_caption"} <= set(names)
    assert all(prompts.prompt_version(n).startswith(f"{n}@") for n in names)
    text = prompts.render("merge", index=3, overview="A park [0 - 3].", different="moved", attention="red")
    assert "A park [0 - 3]." in text and "moved" in text and "(ID=n)" in text


def test_valid_scene_split_is_kept() -> None:
    spans, notes = repair_scenes(_split((0, 2), (3, 5)), 6, [3])
    assert [(s.start, s.end) for s in spans] == [(0, 2), (3, 5)] and notes == []
    one, notes = repair_scenes(_split((0, 0)), 1, [])
    assert [(s.start, s.end) for s in one] == [(0, 0)] and notes == []


@pytest.mark.parametrize("spans, n, cuts, expected", [
    ([(2, 0), (3, 9)], 6, [], [(0, 2), (3, 5)]),  # reversed range, end past the last keyframe
    ([(1, 2), (5, 5)], 6, [], [(0, 2), (3, 5)]),  # gaps closed, first scene starts at 0
    ([(0, 4), (2, 5)], 6, [], [(0, 4), (5, 5)]),  # overlap cut
    ([(0, 5)], 6, [2, 4], [(0, 1), (2, 3), (4, 5)]),  # a cut always starts a scene
    ([(0, 1), (0, 1), (7, 8)], 3, [], [(0, 2)]),  # duplicate dropped, out-of-range dropped, last extended
])
def test_scene_split_is_repaired_to_cover_keyframes_in_order(spans, n, cuts, expected) -> None:
    out, notes = repair_scenes(_split(*spans), n, cuts)
    assert [(s.start, s.end) for s in out] == expected and notes


def test_unrepairable_scene_split_fails_with_a_reason() -> None:
    with pytest.raises(VideoFailure) as exc:
        repair_scenes(_split((7, 9)), 4, [])
    assert exc.value.reason == "invalid_scene_split"


def test_id_tags_are_stripped() -> None:
    assert strip_ids("The box (ID=1) meets the disc ( ID = 12 ).") == "The box meets the disc."


@pytest.mark.parametrize("text, expected", [
    ("A man (ID: 3) waves; a dog (id 4) runs.", "A man waves; a dog runs."),
    ("A cat [ID=4] sits by two people (IDs 3 and 5).", "A cat sits by two people."),
    ("Two people (ID=3, ID=4) talk.", "Two people talk."),
    ("The man ID=5 smiles. A girl ID#7 jumps.", "The man smiles. A girl jumps."),
    ("ID 3 walks to the door, then ID 4 follows.", "The object walks to the door, then the object follows."),
    ("Object 3 rolls left while object #4 stays.", "The object rolls left while the object stays."),
    ("Player #3 scores; the car (#2) stops and the woman (2) nods.", "Player scores; the car stops and the woman nods."),
    ("In 2020, 3 people met in room 101 (see the sign).", "In 2020, 3 people met in room 101 (see the sign)."),
])
def test_strip_ids_removes_every_id_form_models_write(text: str, expected: str) -> None:
    assert strip_ids(text) == expected


def test_engine_config_is_checked_and_named_in_fingerprints() -> None:
    with pytest.raises(ConfigError, match="unknown engine backend"):
        from glave_tasks.backends import load

        load("engine", "nope")
    with pytest.raises(ValueError, match="needs base_url"):
        EngineConfig(backend="openai")
    assert engine_ids(EngineConfig(backend="vllm", model="m", revision="r"))["revision"] == "r"
    assert engine_ids(EngineConfig())["engine"] == "rules"


def test_rules_engine_answers_structured_tasks_and_reports_unknown_ones() -> None:
    import json

    from glave_tasks.language.engines.rules import RULES, rule

    @rule("test_pick")
    def _pick(ctx: dict) -> str:
        return json.dumps({"scenes": [{"start": 0, "end": ctx["n"], "scene_hint": "x", "camera_note": "y"}]})

    try:
        engine = build_engine(EngineConfig())
        out = complete(engine, [LLMRequest(task="test_pick", prompt="", context={"n": 2}),
                                LLMRequest(task="unknown_task", prompt="")], [SceneSplit, None])
        assert out[0].ok and out[0].parsed.scenes[0].end == 2 and out[0].generator == "rules"
        assert out[1].error == "no_rule"
    finally:
        RULES.pop("test_pick")


def test_weights_on_s3_are_downloaded_once_to_the_local_cache(s3_endpoint: str, s3_bucket: str, tmp_path) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.put_object(Bucket=s3_bucket, Key="models/tiny/config.json", Body=b'{"a": 1}')
    s3.put_object(Bucket=s3_bucket, Key="models/tiny/sub/weights.bin", Body=b"\x00" * 100)
    uri = f"s3://{s3_bucket}/models/tiny"
    local = resolve_weights(uri, tmp_path / "cache", S3Options(endpoint_url=s3_endpoint))
    assert (tmp_path / "cache").as_posix() in str(local)
    assert Path(local, "config.json").read_bytes() == b'{"a": 1}'
    assert Path(local, "sub", "weights.bin").stat().st_size == 100
    assert Path(local, DONE).exists()
    s3.delete_object(Bucket=s3_bucket, Key="models/tiny/config.json")  # a second resolve must not download
    assert resolve_weights(uri, tmp_path / "cache", S3Options(endpoint_url=s3_endpoint)) == local
    with pytest.raises(ConfigError, match="not found"):
        resolve_weights(f"s3://{s3_bucket}/models/none", tmp_path / "cache", S3Options(endpoint_url=s3_endpoint))
    (tmp_path / "baked").mkdir()
    assert resolve_weights(str(tmp_path / "baked"), tmp_path) == (tmp_path / "baked").resolve()
    with pytest.raises(ConfigError, match="not found"):
        resolve_weights("/opt/models/missing", tmp_path)
