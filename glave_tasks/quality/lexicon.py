"""Small word lists behind the caption heuristics: object nouns the detector vocabulary can
confirm, and verbs that mark a sentence as an action rather than an attribute description."""

from __future__ import annotations

import re

# Object word -> the detector/tracker labels that would confirm it. Generic labels ("animal",
# "vehicle", "person") confirm their kinds, because the detector prompt list uses them.
OBJECT_WORDS: dict[str, set[str]] = {}


def _add(labels: set[str], *words: str) -> None:
    for w in words:
        OBJECT_WORDS.setdefault(w, set()).update(labels)


_add({"person", "human"}, "person", "people", "man", "men", "woman", "women", "boy", "girl", "child", "children",
     "kid", "kids", "player", "pedestrian", "rider", "driver")
for _animal in ("bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe"):
    _add({_animal, "animal"}, _animal, _animal + "s")
_add({"animal"}, "animal", "animals")
_add({"bird", "animal"}, "birds")
_add({"horse", "animal"}, "pony")
_add({"dog", "animal"}, "puppy")
_add({"sheep", "animal"}, "lamb")
for _veh in ("car", "bus", "truck", "boat", "train", "airplane", "motorcycle", "bicycle"):
    _add({_veh, "vehicle"}, _veh, _veh + ("es" if _veh.endswith("s") else "s"))
_add({"vehicle"}, "vehicle", "vehicles")
_add({"airplane", "vehicle"}, "plane", "aircraft", "jet")
_add({"bicycle", "vehicle"}, "bike")
_add({"motorcycle", "vehicle"}, "motorbike")
_add({"robot"}, "robot", "robots")
# Synthetic shapes of the classical detector (embedded default).
_add({"box", "shape", "object"}, "box", "boxes", "rectangle", "square")
_add({"disc", "shape", "object"}, "disc", "discs", "disk", "circle", "ball")

ACTION_VERBS = {
    "move", "moves", "moving", "moved", "walk", "walks", "walking", "run", "runs", "running", "jump", "jumps",
    "jumping", "turn", "turns", "turning", "enter", "enters", "entering", "leave", "leaves", "leaving", "exit",
    "exits", "slide", "slides", "sliding", "drive", "drives", "driving", "fly", "flies", "flying", "pan", "pans",
    "panning", "zoom", "zooms", "zooming", "approach", "approaches", "approaching", "rise", "rises", "falls",
    "fall", "falling", "roll", "rolls", "rolling", "shift", "shifts", "shifting", "travel", "travels", "crosses",
    "cross", "crossing", "appears", "appear", "disappears", "disappear", "picks", "holds", "throws", "opens",
    "closes", "grabs", "pushes", "pulls", "lifts", "speeds", "slows", "stops", "starts", "continues", "heads",
    "drifts", "glides", "spins", "rotates", "bounces", "chases", "follows", "reaches", "swims", "climbs", "cuts",
}

WORD = re.compile(r"[a-z]+")
ID_TAG = re.compile(r"\(ID\s*=\s*(\d+)\)")
SENTENCE = re.compile(r"(?<=[.!?])\s+")


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def sentences(text: str) -> list[str]:
    return [s.strip() for s in SENTENCE.split(text or "") if s.strip()]


def is_action(sentence: str) -> bool:
    return any(w in ACTION_VERBS for w in words(sentence))
