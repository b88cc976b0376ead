"""Stage x shard states of a run, from commit and failure markers alone."""

from __future__ import annotations

from typing import Any

from .layout import RunLayout
from .run import read_commit, read_manifest
from .stages import available
from .store import ArtifactStore


def run_status(store: ArtifactStore, run_id: str, stages: list[str] | None = None) -> dict[str, Any]:
    manifest = read_manifest(store, run_id)
    layout = RunLayout(run_id)
    out: dict[str, Any] = {"run_id": run_id, "store": store.root, "num_videos": manifest["num_videos"],
                           "shards": manifest["shards"], "stages": {}}
    for stage in stages or available():
        rows = []
        failures: dict[str, int] = {}
        for shard in manifest["shards"]:
            marker = read_commit(store, run_id, stage, shard)
            if marker is not None:
                state = "committed"
                for reason, n in marker.get("failures", {}).items():
                    failures[reason] = failures.get(reason, 0) + n
                rows.append({"shard": shard, "state": state, "videos_in": marker["videos_in"],
                             "videos_ok": len(marker["videos_ok"]), "videos_failed": marker["videos_failed"],
                             "counts": marker.get("counts", {}), "duration_s": marker.get("duration_s")})
            elif store.exists(layout.failed(stage, shard)):
                info = store.read_json(layout.failed(stage, shard))
                rows.append({"shard": shard, "state": "failed", "reason": info.get("reason"),
                             "detail": info.get("detail") or str(info.get("failures", ""))})
            else:
                rows.append({"shard": shard, "state": "missing"})
        out["stages"][stage] = {"shards": rows, "failures": failures,
                                "committed": sum(r["state"] == "committed" for r in rows)}
    return out


def format_status(status: dict[str, Any]) -> str:
    lines = [f"run {status['run_id']}  videos={status['num_videos']}  shards={len(status['shards'])}  store={status['store']}"]
    for stage, info in status["stages"].items():
        states = " ".join(f"{r['shard']}:{r['state'][0].upper()}" for r in info["shards"])
        fails = ", ".join(f"{k}={v}" for k, v in sorted(info["failures"].items())) or "none"
        lines.append(f"  {stage:<9} {info['committed']}/{len(info['shards'])} committed  [{states}]  failures: {fails}")
    lines.append("  (C committed, F failed, M missing)")
    return "\n".join(lines)
