"""Planted defects in GLaVE records are each caught by the check meant for them; a clean record passes."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from glave_tasks.audit import audit_targets
from glave_tasks.config import load_config
from glave_tasks.quality.record_format import qa_entry


def _opts(*texts: str) -> list[str]:
    return [f"{L}. {t}" for L, t in zip("ABCD", texts)]


def clean_record() -> dict:
    scene_qa = {
        "0": qa_entry("In which direction does the red car move?", "to the right", "Object Direction",
                      _opts("to the left", "to the right", "upward", "downward"), "B"),
        "1": qa_entry("How many cars can be seen in this scene?", "one", "Count", _opts("one", "two", "three", "four"), "A"),
        "2": qa_entry("What colour is the car?", "red", "Description-Object", _opts("blue", "green", "red", "white"), "C"),
        "3": qa_entry("Where is the tree?", "beside the road", "Spatial",
                      _opts("on the roof", "in the sky", "inside the car", "beside the road"), "D"),
    }
    general = {
        "0": qa_entry("Does the dog appear before or after the car?", "after", "Time Order",
                      _opts("before", "after", "at the same time", "it is not in the video"), "B"),
        "1": qa_entry("How many hard shot cuts does the video contain?", "one", "Temporal", _opts("two", "one", "three", "zero"), "B"),
        "2": qa_entry("Why does the dog run?", "it chases the car", "Causal",
                      _opts("it is scared of the rain", "it chases the car", "it wants food", "it hears a bell"), "B"),
    }
    return {
        "different": ["", "The car (ID=1) moves right.", "A dog (ID=2) enters from the left."],
        "attention": ["A red car (ID=1) stands on a grey road beside a tree.", "The red car (ID=1) is on the road.",
                      "A brown dog (ID=2) is on the grass near the red car (ID=1)."],
        "merged": ["A red car (ID=1) stands on a grey road. A tree grows beside the road.",
                   "The red car (ID=1) moves to the right. It is shiny and red.",
                   "A brown dog (ID=2) runs after the car (ID=1). The grass is green."],
        "overview_caption": "[0 - 1] A red car drives to the right. [2 - 2] A brown dog chases it.",
        "scene_list": {
            "0": {"frame_range": [0, 1], "scene_hint": "red car on a road",
                  "caption": "A red car drives to the right along a grey road, and a tree stands beside the road.", "QA_pair": scene_qa},
            "1": {"frame_range": [2, 2], "scene_hint": "dog on grass", "caption": "After a cut, a brown dog runs across green grass chasing the car.",
                  "QA_pair": {}},
        },
        "general_qa": general,
        "caption": "A red car drives to the right along a grey road. After one cut, a brown dog runs after the car because it chases it.",
    }


def _general(rec: dict, i: str) -> dict:
    return rec["general_qa"][i]


DEFECTS = {
    "answer letter outside A-D": ("qa.answer_letter", lambda r: _general(r, "0").update(Answer_choices="E")),
    "three options": ("qa.options_count", lambda r: _general(r, "1").update(Options=_opts("two", "one", "three"))),
    "unknown dimension": ("qa.dimension_allowed", lambda r: _general(r, "2").update(Dimension="Vibes")),
    "duplicate question": ("qa.duplicates_exact", lambda r: r["general_qa"].update(
        {"3": copy.deepcopy(r["general_qa"]["1"])})),
    "empty caption": ("captions.non_empty", lambda r: r["merged"].__setitem__(1, "")),
    "option contradicts the answer": ("qa.option_matches_answer", lambda r: r["scene_list"]["0"]["QA_pair"]["0"].update(
        Options=_opts("to the left", "to the top", "upward", "to the right"))),
    "letter points at a wrong option": ("qa.option_matches_answer", lambda r: _general(r, "2").update(Answer_choices="C")),
}


@pytest.fixture(scope="module")
def config():
    return load_config(environ={})


def _audit(tmp_path: Path, record: dict, config) -> dict:
    path = tmp_path / "sample.json"
    path.write_text(json.dumps(record))
    return {c.check: c for c in audit_targets([str(path)], config, None).checks}


def test_clean_record_passes_every_critical_check(tmp_path: Path, config) -> None:
    checks = _audit(tmp_path, clean_record(), config)
    failing = {n: (c.status, c.detail) for n, c in checks.items() if c.status == "fail"}
    assert failing == {}
    assert checks["captions.hallucination"].status == "skip", "no tracker labels in an external file"
    assert checks["captions.track_coverage"].value == 1.0


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_planted_defect_is_caught_by_its_check(defect: str, tmp_path: Path, config) -> None:
    check, plant = DEFECTS[defect]
    record = clean_record()
    plant(record)
    checks = _audit(tmp_path, record, config)
    assert checks[check].status == "fail", (defect, checks[check])
    if checks[check].critical:
        assert checks[check].blocking


def test_thresholds_and_criticality_come_from_config(tmp_path: Path) -> None:
    strict = load_config(environ={}, overrides={"validate": {"checks": {
        "qa.dimension_coverage": {"fail": 0.9, "critical": True}}}})
    check = _audit(tmp_path, clean_record(), strict)["qa.dimension_coverage"]
    assert check.status == "fail" and check.blocking and check.fail_threshold == 0.9
    assert check.warn_threshold == 0.25, "fields the config leaves out keep their defaults"
