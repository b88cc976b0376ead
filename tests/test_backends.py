"""Backends are added in their module plus one registry line, never in a stage.

A detector registered here and nowhere else is accepted by the config, its declared model ids
reach the track stage's fingerprint and commit marker, and its declared resources size the track
pod the cluster would receive.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from glave_tasks import backends
from glave_tasks.backends import Backend
from glave_tasks.config import DetectorConfig, GlaveConfig, load_config
from glave_tasks.contract import Resources
from glave_tasks.discover import discover
from glave_tasks.errors import ConfigError
from glave_tasks.run import Run
from glave_tasks.runner import fingerprint, run_stage
from glave_tasks.stages import available, build_stage
from glave_tasks.store import ArtifactStore
from glave_tasks.vision.types import Detection, VideoFrames
from tests.support import make_config, synthetic


class FakeDetector(Backend):
    """A detector that finds nothing, with a made-up model and a made-up GPU appetite."""

    backend = "fake"
    model_id = "fake-net@rev7"
    warm_imports = ("fake_net_runtime",)

    @classmethod
    def model_ids(cls, config: DetectorConfig) -> dict[str, str]:
        return {"detector": f"fake-net@rev7:{config.confidence}"}

    @classmethod
    def resources(cls, config: DetectorConfig) -> Resources:
        return Resources(cpu="3", memory="24Gi", gpus=2, ephemeral_storage="50Gi")

    def __init__(self, config: DetectorConfig, **_: Any) -> None:
        self.config = config

    def detect(self, video: VideoFrames) -> list[list[Detection]]:
        return [[] for _ in range(len(video))]


@pytest.fixture
def fake_detector(monkeypatch: pytest.MonkeyPatch) -> GlaveConfig:
    # The one registry line a new detector adds (here pointing at this test module).
    monkeypatch.setitem(backends.REGISTRY["detector"], "fake", f"{__name__}:FakeDetector")
    return load_config(environ={}, overrides={"track": {"detector": {"backend": "fake", "confidence": 0.4}}})


def test_config_accepts_registered_backends_only(fake_detector: GlaveConfig) -> None:
    assert fake_detector.track.detector.backend == "fake"
    with pytest.raises(ConfigError, match="unknown detector backend 'nope'.*classical, fake, ultralytics"):
        load_config(environ={}, overrides={"track": {"detector": {"backend": "nope"}}})


def test_registered_detector_ids_enter_the_track_fingerprint(fake_detector: GlaveConfig, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    config = make_config(tmp_path, track={"detector": {"backend": "fake", "confidence": 0.4}})
    track = build_stage("track", config)
    assert track.model_ids() == {"detector": "fake-net@rev7:0.4"}
    upstream = {"ingest": {"fingerprint": "f"}}
    before = fingerprint(track, [], upstream)
    # Same config, another model behind the same backend name: another output.
    monkeypatch.setattr(FakeDetector, "model_ids", classmethod(lambda cls, c: {"detector": "fake-net@rev8"}))
    assert fingerprint(track, [], upstream) != before
    monkeypatch.undo()
    monkeypatch.setitem(backends.REGISTRY["detector"], "fake", f"{__name__}:FakeDetector")

    # The real stages over a real video: the commit marker records what the detector declared.
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    synthetic.static_video(inbox / "still.mp4", seconds=2.0)
    store = ArtifactStore(config.store.root)
    discover(store, config, str(inbox), "fake-run")
    run_stage(build_stage("ingest", config), store, "fake-run", 0, show_progress=False)
    outcome = run_stage(track, store, "fake-run", 0, show_progress=False)
    assert outcome.marker["models"] == {"detector": "fake-net@rev7:0.4"}
    assert Run(store, "fake-run").commit("track", 0) == outcome.marker


def test_registered_detector_resources_size_the_track_pod(fake_detector: GlaveConfig) -> None:
    from operators.render import render_pods

    pods = {p["metadata"]["labels"]["glave.io/task"]: p for p in render_pods(fake_detector, "r", 0)}
    track = pods["track"]["spec"]
    res = track["containers"][0]["resources"]
    assert res["requests"] == {"cpu": "3", "memory": "24Gi", "ephemeral-storage": "50Gi"}
    assert res["limits"]["nvidia.com/gpu"] == "2"
    assert track["nodeSelector"] == fake_detector.orchestration.k8s.gpu_node_selector
    for other in available():
        if other != "track":
            assert "nvidia.com/gpu" not in pods[other]["spec"]["containers"][0]["resources"]["limits"]


def test_registered_detector_imports_are_warmed_for_track(fake_detector: GlaveConfig) -> None:
    from glave_tasks.launcher import preload_modules
    from glave_tasks.stages import stage_class

    assert "fake_net_runtime" in stage_class("track").warm_imports  # idle pool workers of a run
    assert "fake_net_runtime" in preload_modules()  # the warm launcher (skipped where not installed)


def test_every_registered_backend_module_is_named_as_its_config_value() -> None:
    for kind, names in backends.REGISTRY.items():
        for name, target in names.items():
            module = target.split(":")[0]
            if kind != "similarity":  # one module holds the weightless similarity descriptors
                assert module.rsplit(".", 1)[-1] == name, (kind, name, target)
            cls = backends.load(kind, name)
            if kind in ("detector", "segmenter", "engine") and name != "embedded":
                assert issubclass(cls, Backend), (kind, name)
