"""A run's stage x shard states (:meth:`glave_tasks.run.Run.status`) as text."""

from __future__ import annotations

from typing import Any


def format_status(status: dict[str, Any]) -> str:
    lines = [f"run {status['run_id']}  videos={status['num_videos']}  shards={len(status['shards'])}  store={status['store']}"]
    for stage, info in status["stages"].items():
        states = " ".join(f"{r['shard']}:{r['state'][0].upper()}" for r in info["shards"])
        fails = ", ".join(f"{k}={v}" for k, v in sorted(info["failures"].items())) or "none"
        lines.append(f"  {stage:<9} {info['committed']}/{len(info['shards'])} committed  [{states}]  failures: {fails}")
    lines.append("  (C committed, F failed, M missing)")
    return "\n".join(lines)
