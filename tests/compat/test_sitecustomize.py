"""The compat sitecustomize that vLLM's child processes start with: it costs a child nothing until
the child imports torchvision, and then makes that import work on a CPU build of torch.

vLLM starts many short Python children while it compiles (one per kernel, to test-load it);
importing torch in each of them cost about three seconds of CPU apiece.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from glave_tasks.compat.subprocesses import export_to_subprocesses

ROOT = Path(__file__).resolve().parents[2]


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(ROOT)
    return export_to_subprocesses(env)


def _run(script: str, tmp_path: Path) -> dict[str, object]:
    path = tmp_path / "child.py"
    path.write_text(textwrap.dedent(script))
    result = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, env=_child_env(),
                            cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def test_a_child_that_never_imports_torchvision_imports_no_torch(tmp_path: Path) -> None:
    started = time.perf_counter()
    report = _run("""
        import json, sys
        print(json.dumps({"torch": "torch" in sys.modules, "torchvision": "torchvision" in sys.modules}))
    """, tmp_path)
    assert report == {"torch": False, "torchvision": False}
    assert time.perf_counter() - started < 2.0  # an interpreter start, not a torch import (about 3 s)


def test_probing_for_torchvision_first_then_importing_it_works(tmp_path: Path) -> None:
    """Libraries (transformers) ask ``importlib.util.find_spec`` before importing; the probe sees
    the installed package and does not use up the hook."""
    report = _run("""
        import importlib.util, json, sys
        spec = importlib.util.find_spec("torchvision")
        probe = {"origin_is_installed": spec.origin.endswith("torchvision/__init__.py"),
                 "is_package": bool(spec.submodule_search_locations), "torch_loaded": "torch" in sys.modules}
        import torch
        import torchvision
        from torchvision.ops import nms
        keep = nms(torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30.]]),
                   torch.tensor([0.9, 0.8, 0.7]), 0.5).tolist()
        print(json.dumps({**probe, "same_module": sys.modules["torchvision"] is torchvision,
                          "spec_origin": torchvision.__spec__.origin == spec.origin, "keep": keep}))
    """, tmp_path)
    assert report == {"origin_is_installed": True, "is_package": True, "torch_loaded": False,
                      "same_module": True, "spec_origin": True, "keep": [0, 2]}


def test_a_submodule_imported_first_brings_the_fallback_along(tmp_path: Path) -> None:
    report = _run("""
        import json, torch
        from torchvision.ops import boxes
        keep = boxes.nms(torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10.]]), torch.tensor([0.9, 0.8]), 0.5).tolist()
        print(json.dumps({"keep": keep}))
    """, tmp_path)
    assert report == {"keep": [0]}
