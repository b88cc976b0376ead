"""A run's stage x shard states (:meth:`glave_tasks.run.Run.status`) as text."""

from __future__ import annotations

from typing import Any

# One letter per known state; a state added later gets a free letter of its own (see _letters).
LETTERS = {"committed": "C", "failed": "F", "missing": "M", "corrupt": "X", "torn": "T"}
DETAIL_CHARS = 120


def _letters(states: list[str]) -> dict[str, str]:
    """A distinct letter for each state printed: known ones as in LETTERS, others by their first
    free letter (never one that another state already prints as)."""
    out = {s: LETTERS[s] for s in states if s in LETTERS}
    used = set(LETTERS.values())
    for s in states:
        if s in out:
            continue
        letter = next((c.upper() for c in s + "abcdefghijklmnopqrstuvwxyz" if c.isalpha() and c.upper() not in used), "?")
        used.add(letter)
        out[s] = letter
    return out


def _shard_failure(row: dict[str, Any]) -> str:
    """One shard that did not commit, generically: its state, reason and a one-line detail."""
    detail = " ".join(str(row.get("detail") or "").split())
    if len(detail) > DETAIL_CHARS:
        detail = detail[:DETAIL_CHARS - 3] + "..."
    return f"shard {row['shard']} {row['state']}: {row.get('reason') or 'no reason recorded'}" + (f" ({detail})" if detail else "")


def format_status(status: dict[str, Any]) -> str:
    lines = [f"run {status['run_id']}  videos={status['num_videos']}  shards={len(status['shards'])}  store={status['store']}"]
    seen: list[str] = []
    for info in status["stages"].values():
        seen += [r["state"] for r in info["shards"] if r["state"] not in seen]
    letters = _letters(["committed", "failed", "missing", *[s for s in seen if s not in ("committed", "failed", "missing")]])
    for stage, info in status["stages"].items():
        states = " ".join(f"{r['shard']}:{letters[r['state']]}" for r in info["shards"])
        # Videos' failure counts, then every shard that holds no commit for a reason (a missing
        # shard has none: it has not run).
        parts = [", ".join(f"{k}={v}" for k, v in sorted(info["failures"].items()))]
        parts += [_shard_failure(r) for r in info["shards"] if r["state"] not in ("committed", "missing")]
        fails = "; ".join(p for p in parts if p) or "none"
        lines.append(f"  {stage:<9} {info['committed']}/{len(info['shards'])} committed  [{states}]  failures: {fails}")
    lines.append("  (" + ", ".join(f"{letter} {state}" for state, letter in letters.items()) + ")")
    return "\n".join(lines)
