"""What the rules can ask about a scene: objects, counts, motion and position from the tracks."""

from __future__ import annotations

from collections import defaultdict
from typing import Any


def scene_objects(tracks: list[dict[str, Any]], t0: float, t1: float, width: int, height: int) -> list[dict[str, Any]]:
    """Per track seen in [t0, t1): label, first/last centre (0..1), displacement and speed."""
    by_track: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in tracks:
        if t0 <= float(r["timestamp_s"]) < t1:
            by_track[int(r["track_id"])].append(r)
    out = []
    for tid, rows in sorted(by_track.items()):
        rows.sort(key=lambda r: r["timestamp_s"])
        first, last = rows[0], rows[-1]

        def centre(r: dict[str, Any]) -> tuple[float, float]:
            return ((r["x1"] + r["x2"]) / 2 / max(width, 1), (r["y1"] + r["y2"]) / 2 / max(height, 1))

        (x0, y0), (x1, y1) = centre(first), centre(last)
        span = max(float(last["timestamp_s"]) - float(first["timestamp_s"]), 1e-6)
        labels = [r["label"] for r in rows]
        out.append({
            "track_id": tid, "label": max(set(labels), key=labels.count), "samples": len(rows),
            "start": [round(x0, 4), round(y0, 4)], "end": [round(x1, 4), round(y1, 4)],
            "dx": round(x1 - x0, 4), "dy": round(y1 - y0, 4),
            "speed": round(((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5 / span, 5),
            "first_t": float(first["timestamp_s"]),
        })
    return out
