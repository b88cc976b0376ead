"""The warm launcher: ``glave`` commands forked from one process that imported the heavy
libraries once, behaving like subprocesses (output, exit codes, environment, working directory,
signals), and replaced when it dies."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from glave_tasks.host import pid_alive
from glave_tasks.launcher import launch, launcher_pid
from tests.support import synthetic


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    # The module's own launcher (its socket folder), gone when idle for 30 s.
    return {**os.environ, "GLAVE_LAUNCHER_DIR": str(tmp_path_factory.mktemp("launcher")), "GLAVE_LAUNCHER_IDLE_S": "30"}


def _run(argv: list[str], env: dict[str, str], cwd: Path | None = None) -> tuple[int, str, int]:
    cmd = launch(argv, env=env, cwd=str(cwd) if cwd else None, wait_s=180)
    out = cmd.stdout.read()
    return cmd.wait(), out, cmd.pid


def test_commands_get_their_own_output_exit_code_environment_and_folder(env: dict[str, str], tmp_path: Path) -> None:
    rc, out, _ = _run(["glave", "--help"], env)
    assert rc == 0 and "GLaVE batch annotation" in out
    first = launcher_pid(env=env)
    assert first is not None and pid_alive(first)

    # A user error: exit code 2 and its one-line message, through the same launcher. The store
    # path is relative: it resolves in the caller's folder, and the environment is the caller's.
    work = tmp_path / "work"
    (work / "store").mkdir(parents=True)
    rc, out, pid = _run(["glave", "status", "--run-id", "missing", "--store", "store"], {**env, "GLAVE__RUN__SHARD_SIZE": "x"}, work)
    assert rc == 2 and "shard_size" in out, out  # the request's environment reached the config loader
    rc, out, _ = _run(["glave", "status", "--run-id", "missing", "--store", "store"], env, work)
    assert rc == 2 and f"has no manifest in {work / 'store'}" in out, out
    assert launcher_pid(env=env) == first and pid != first


def test_a_killed_command_reports_its_signal_and_the_launcher_stays(env: dict[str, str], tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    synthetic.long_video(inbox / "long.mp4", seconds=30.0, width=320, height=180)
    argv = ["glave", "run", "--input", str(inbox), "--run-id", "r-kill", "--store", str(tmp_path / "store")]
    cmd = launch(argv, env=env, wait_s=180)
    time.sleep(1.0)
    os.killpg(cmd.pid, signal.SIGKILL)  # what the operator's on_kill and an OOM kill do
    cmd.stdout.read()
    assert cmd.wait() == -signal.SIGKILL
    server = launcher_pid(env=env)
    assert server is not None and pid_alive(server)


def test_a_dead_launcher_is_replaced(env: dict[str, str]) -> None:
    assert _run(["glave", "--help"], env)[0] == 0
    old = launcher_pid(env=env)
    assert old is not None
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pid_alive(old) and time.monotonic() < deadline:
        time.sleep(0.1)
    rc, out, _ = _run(["glave", "--help"], env)
    assert rc == 0 and "GLaVE" in out
    new = launcher_pid(env=env)
    assert new is not None and new != old and pid_alive(new)
    os.kill(new, signal.SIGTERM)


def test_the_first_caller_does_not_wait_for_a_launcher_to_warm_up(tmp_path: Path) -> None:
    from glave_tasks.launcher import LauncherUnavailable

    env = {**os.environ, "GLAVE_LAUNCHER_DIR": str(tmp_path / "cold"), "GLAVE_LAUNCHER_IDLE_S": "20"}
    t0 = time.monotonic()
    with pytest.raises(LauncherUnavailable, match="still starting"):
        launch(["glave", "--help"], env=env)  # the caller runs this one itself
    started = [p.read_text() for p in (tmp_path / "cold").glob("*.starting")]
    with pytest.raises(LauncherUnavailable, match="still starting"):
        launch(["glave", "--help"], env=env)  # a second caller meanwhile starts no second launcher
    assert time.monotonic() - t0 < 5
    assert len(started) == 1 and [p.read_text() for p in (tmp_path / "cold").glob("*.starting")] == started
    rc, out, _ = _run(["glave", "--help"], env)
    assert rc == 0 and "GLaVE" in out
    assert launcher_pid(env=env) == int(started[0])


def test_callers_that_differ_in_import_time_settings_get_different_launchers(env: dict[str, str]) -> None:
    from glave_tasks.launcher import socket_path

    assert socket_path(env=env) == socket_path(env={**env, "AIRFLOW_CTX_TASK_ID": "track"})
    assert socket_path(env=env) != socket_path(env={**env, "HF_HUB_OFFLINE": "0" if env.get("HF_HUB_OFFLINE") == "1" else "1"})


def test_the_launcher_preloads_what_every_registered_stage_and_backend_declares() -> None:
    from glave_tasks import backends
    from glave_tasks.launcher import BASE_PRELOAD, never_preloaded, preload_modules
    from glave_tasks.stages import stage_classes

    preload = preload_modules()
    assert len(preload) == len(set(preload)) and preload[:len(BASE_PRELOAD)] == BASE_PRELOAD
    for cls in stage_classes().values():
        assert {m for m in cls.warm_imports if not never_preloaded(m)} <= set(preload), cls.name
    for kind, names in backends.REGISTRY.items():
        for name in names:
            declared = backends.load(kind, name).warm_imports
            assert {m for m in declared if not never_preloaded(m)} <= set(preload), (kind, name)
    # The stages' real needs, each declared once where it is used.
    assert {"great_expectations", "cv2", "ultralytics.trackers.byte_tracker", "sam2.build_sam", "openai"} <= set(preload)


def test_libraries_that_start_threads_or_a_device_at_import_are_never_preloaded(monkeypatch: pytest.MonkeyPatch) -> None:
    from glave_tasks.backends import load
    from glave_tasks.launcher import NEVER_PRELOAD, preload_modules
    from glave_tasks.stages import stage_class

    assert "vllm" in load("engine", "vllm").warm_imports  # declared by the engine that imports it...
    monkeypatch.setattr(stage_class("qa"), "warm_imports", ("vllm.entrypoints.openai.api_server", "pycuda.autoinit"))
    preload = preload_modules()
    for module in preload:  # ...and by a stage, yet neither it nor a submodule reaches the launcher
        assert not any(module == n or module.startswith(f"{n}.") for n in NEVER_PRELOAD), module
    # Nor does anything no stage or backend declares (transformers comes with ingest's CLIP backend).
    assert not {"torchvision", "sentence_transformers"} & set(preload)
    assert "transformers" in load("similarity", "clip").warm_imports


def test_a_stage_or_backend_needing_a_heavy_import_declares_it_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from glave_tasks import backends
    from glave_tasks.launcher import preload_modules
    from glave_tasks.stages import stage_class

    monkeypatch.setattr(stage_class("bridge"), "warm_imports", ("json.tool",))
    monkeypatch.setattr(backends.load("segmenter", "bytetrack"), "warm_imports", ("xml.dom.minidom",))
    preload = preload_modules()
    assert "json.tool" in preload and "xml.dom.minidom" in preload
    assert "xml.dom.minidom" in stage_class("track").warm_imports  # the run's pool warms it for track too
