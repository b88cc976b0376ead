"""Failure isolation: a model that answers one video badly fails that video, never the shard."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from glave_tasks.config import load_config
from glave_tasks.layout import RunLayout
from glave_tasks.runner import run_stage
from glave_tasks.stages import build_stage
from glave_tasks.store import ArtifactStore
from tests.support import synthetic
from tests.support.committed import Committed
from tests.support.openai_server import completion
from tests.support.seed import merge_tables, seed_committed, upstream_from_truth

RUN = "r-fail"


def _shard(tmp_path: Path) -> ArtifactStore:
    store = ArtifactStore(str(tmp_path / "store"))
    config = load_config(environ={})
    ingest, track, files = [], [], {}
    for vid, gt in [("good", synthetic.two_shot_video(tmp_path / "a.mp4")),
                    ("bad", synthetic.static_video(tmp_path / "b.mp4")),
                    ("fine", synthetic.static_video(tmp_path / "c.mp4"))]:
        i, t, f = upstream_from_truth(RUN, 0, vid, gt, keyframe_every_s=2.0)
        ingest.append(i), track.append(t), files.update(f)
    seed_committed(store, config, RUN, 0, "ingest", merge_tables(*ingest), files)
    seed_committed(store, config, RUN, 0, "track", merge_tables(*track))
    return store


def test_malformed_scene_split_fails_only_its_video_after_retries(serve, tmp_path: Path) -> None:
    """The HTTP engine talks to a server that answers the static video's scene split with broken
    JSON every time: that video is recorded as malformed_model_output, the others go through."""

    def respond(body: dict[str, Any], n: int) -> tuple[int, Any]:
        prompt = body["messages"][0]["content"][-1]["text"]
        if "response_format" in body:
            if "keyframes 0 to 1, in order:" in prompt and "shows no tracked object" in prompt and "box" not in prompt:
                return 200, completion('{"scenes": [{"start": 0, "end"')  # truncated JSON
            last = int(prompt.split("captions of its keyframes 0 to ")[1].split(",")[0])
            return 200, completion(json.dumps({"scenes": [{"start": 0, "end": last, "scene_hint": "street",
                                                            "camera_note": "static"}]}))
        return 200, completion("A caption (ID=1).")

    server = serve(respond)
    store = _shard(tmp_path)
    config = load_config(environ={}, overrides={"engine": {
        "backend": "openai", "base_url": server.url, "model": "served", "structured_retries": 2, "retries": 0}})
    run_stage(build_stage("caption", config), store, RUN, 0, show_progress=False)
    layout = RunLayout(RUN)
    rows = store.read_table(Committed(store, layout.run_id).table("caption", 0, "local_captions")).to_pylist()
    assert {r["generator"] for r in rows} == {"openai"} and len({r["video_id"] for r in rows}) == 3
    # Make exactly one video's merged captions recognisable to the scripted server.
    tbl = store.read_table(Committed(store, layout.run_id).table("caption", 0, "local_captions"))
    patched = [dict(r, text="Keyframe shows no tracked object.") if r["video_id"] == "bad" and r["stream"] == "merged"
               else r for r in tbl.to_pylist()]
    from glave_tasks import schemas

    store.write_table(Committed(store, layout.run_id).table("caption", 0, "local_captions"),
                      schemas.rows_to_table(patched, schemas.LOCAL_CAPTIONS), schemas.LOCAL_CAPTIONS)
    from tests.support.seed import recommit

    recommit(store, RUN, "caption", 0)

    out = run_stage(build_stage("bridge", config), store, RUN, 0, show_progress=False)
    assert out.status == "committed"
    assert out.marker["failures"] == {"malformed_model_output": 1}
    assert sorted(out.marker["videos_ok"]) == ["fine", "good"]
    errors = store.read_table(Committed(store, layout.run_id).table("bridge", 0, "errors")).to_pylist()
    assert errors[0]["video_id"] == "bad" and "scene_split" in errors[0]["detail"]
    splits = [b for b in server.bodies if "response_format" in b]
    assert len(splits) == 3 + 2, "three split requests, then two retries of the malformed one"
    videos = store.read_table(Committed(store, layout.run_id).table("bridge", 0, "video_captions")).to_pylist()
    assert sorted(v["video_id"] for v in videos) == ["fine", "good"]
    assert all("(ID=" not in v["caption"] for v in videos)
