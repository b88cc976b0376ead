"""The torchvision operator shim registers its fallback only where torchvision's own operators
cannot load, in the stage path and in child processes alike.

The GPU situation (a torchvision whose C extension registers ``torchvision::nms`` when torchvision
is imported) is simulated by a ``torchvision`` package placed first on ``PYTHONPATH``: on import it
registers ``torchvision::nms``/``qnms`` itself, exactly what the CUDA build's extension does, and
then runs the installed torchvision. Registering the operators a second time fails there as it
aborts on the GPU, so the first test shows that the simulation reproduces the abort when the
fallback is registered before torchvision is imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from glave_tasks.compat.subprocesses import export_to_subprocesses

ROOT = Path(__file__).resolve().parents[2]

# A torchvision whose "C extension" loads: it registers the operators on import, then hands over
# to the installed package (as the module ``torchvision``), and reports that its ops loaded.
SIMULATED_CUDA_TORCHVISION = '''
"""Stands in for a CUDA build of torchvision whose C extension loads and registers its operators."""
import importlib.util
import os
import sys

import torch

from glave_tasks.compat.torchvision_ops import _nms

CALLS = []

# What torchvision's C extension does when it loads: define the operators (fails if defined).
_extension = torch.library.Library("torchvision", "DEF")
_extension.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
_extension.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")


def _extension_nms(dets, scores, iou_threshold):
    CALLS.append(int(dets.shape[0]))
    return _nms(dets, scores, iou_threshold)


_extension.impl("nms", _extension_nms, "CPU")
_extension.impl("qnms", _extension_nms, "CPU")

_real = os.environ["INSTALLED_TORCHVISION"]
_spec = importlib.util.spec_from_file_location("torchvision", os.path.join(_real, "__init__.py"),
                                               submodule_search_locations=[_real])
_module = importlib.util.module_from_spec(_spec)
sys.modules["torchvision"] = _module
_spec.loader.exec_module(_module)
_module.extension._has_ops = lambda: True  # the extension "loaded"
_module.SIMULATED_EXTENSION = _extension  # keeps the registration alive
_module.EXTENSION_CALLS = CALLS
'''


def _installed_torchvision() -> str:
    out = subprocess.run([sys.executable, "-c", "import importlib.util as u; "
                          "print(u.find_spec('torchvision').submodule_search_locations[0])"],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    return out.stdout.strip()


@pytest.fixture(scope="module")
def gpu_like_site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment of a process that sees the simulated CUDA torchvision."""
    site = tmp_path_factory.mktemp("gpu_site")
    (site / "torchvision").mkdir()
    (site / "torchvision" / "__init__.py").write_text(SIMULATED_CUDA_TORCHVISION)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update({"PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), "INSTALLED_TORCHVISION": _installed_torchvision(),
                "YOLO_OFFLINE": "1"})
    return env


def _run(script: str, env: dict[str, str], tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "child.py"
    path.write_text(textwrap.dedent(script))
    return subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=300)


def test_simulation_reproduces_the_duplicate_registration(gpu_like_site: dict[str, str], tmp_path: Path) -> None:
    """The old order (fallback first, torchvision after) breaks on a torchvision whose operators load."""
    result = _run("""
        import torch
        lib = torch.library.Library("torchvision", "DEF")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        import torchvision
    """, gpu_like_site, tmp_path)
    assert result.returncode != 0
    # The same message as the c10::Error that terminates the GPU process.
    assert "Only a single TORCH_LIBRARY can be used to register the namespace torchvision" in result.stderr


STAGE_SCRIPT = """
    import json, pathlib, sys
    import numpy as np
    from glave_tasks.compat import torchvision_ops
    from glave_tasks.config import load_config
    from glave_tasks.stages import build_stage
    from glave_tasks.vision.types import VideoFrames

    weights = pathlib.Path(sys.argv[1])
    config = load_config(environ={}, overrides={"store": {"root": "store", "local_cache": "cache"}, "track": {
        "detector": {"backend": "ultralytics", "weights": str(weights / "yolo.pt"), "classes": ["person"],
                     "confidence": 0.0, "image_size": 64},
        "segmenter": {"backend": "sam2", "checkpoint": str(weights / "sam2.pt"), "image_size": 128}}})
    stage = build_stage("track", config)
    stage.setup()  # the first import of torchvision, ultralytics and SAM 2 in this process
    image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    detections = stage.detector.detect(VideoFrames("v", [image], [pathlib.Path("x.jpg")], [0]))
    import torchvision
    print(json.dumps({"registered_fallback": torchvision_ops._LIB is not None,
                      "ensure_again": torchvision_ops.ensure_torchvision_ops(),
                      "extension_nms_calls": len(getattr(torchvision, "EXTENSION_CALLS", [])),
                      "frames": len(detections)}))
"""


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random SAM 2.1 tiny and YOLOv8n weights, made in this process so that in the child the
    stage is the first to import torchvision, ultralytics and SAM 2."""
    from glave_tasks.compat.torchvision_ops import ensure_torchvision_ops

    ensure_torchvision_ops()
    import torch
    import ultralytics
    from sam2.build_sam import build_sam2_video_predictor

    folder = tmp_path_factory.mktemp("tiny_weights")
    torch.manual_seed(0)
    sam = build_sam2_video_predictor("configs/sam2.1/sam2.1_hiera_t.yaml", ckpt_path=None, device="cpu",
                                     hydra_overrides_extra=["++model.image_size=128"])
    torch.save({"model": sam.state_dict()}, folder / "sam2.pt")
    yolo = ultralytics.YOLO("yolov8n.yaml")  # architecture only: random weights, no download
    yolo.model.names = {0: "person"}
    yolo.save(str(folder / "yolo.pt"))
    return folder


@pytest.mark.parametrize("where", ["stage", "subprocess"])
def test_stage_imports_cleanly_where_torchvision_registers_its_own_ops(gpu_like_site: dict[str, str], tmp_path: Path,
                                                                        tiny_weights: Path, where: str) -> None:
    """The track stage's production backends load and detect; the extension's nms does the work.

    ``subprocess``: the process starts with the compat sitecustomize (as vLLM's children do), which
    runs the shim before anything else; ``stage``: only the stage path runs it."""
    env = dict(gpu_like_site)
    if where == "subprocess":
        export_to_subprocesses(env)
    result = _run(STAGE_SCRIPT, env, tmp_path, str(tiny_weights))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"registered_fallback": False, "ensure_again": False, "extension_nms_calls": report["frames"],
                      "frames": 1}
    assert report["extension_nms_calls"] >= 1


def test_fallback_registers_where_the_extension_cannot_load(tmp_path: Path) -> None:
    """This machine's situation: CPU torch beside the CUDA-linked wheel. The shim registers once,
    in the parent and in a child started with the compat sitecustomize, and nms then works. In the
    child it registers when torchvision is first imported (here by the shim's own import)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(ROOT)
    script = """
        import json, sys, torch
        from glave_tasks.compat import torchvision_ops
        started_registered = torchvision_ops._LIB is not None  # torchvision not imported yet
        first = torchvision_ops.ensure_torchvision_ops()
        import torchvision
        keep = torchvision.ops.nms(torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30.]]),
                                   torch.tensor([0.9, 0.8, 0.7]), 0.5).tolist()
        print(json.dumps({"at_start": started_registered, "first": first,
                          "again": torchvision_ops.ensure_torchvision_ops(), "keep": keep}))
    """
    parent = _run(script, env, tmp_path)
    assert parent.returncode == 0, parent.stderr[-3000:]
    assert json.loads(parent.stdout.splitlines()[-1]) == {"at_start": False, "first": True, "again": False,
                                                          "keep": [0, 2]}
    child = _run(script, export_to_subprocesses(dict(env)), tmp_path)
    assert child.returncode == 0, child.stderr[-3000:]
    # The shim's import of torchvision ran the sitecustomize hook, which registered the fallback.
    assert json.loads(child.stdout.splitlines()[-1]) == {"at_start": False, "first": False, "again": False,
                                                         "keep": [0, 2]}
