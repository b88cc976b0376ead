"""glave evaluate reads records by content as glave audit does: a record is scored whatever its
file name (YouTube ids start with '_' or '-'), and every file it did not score is listed with the
reason, in the summary and on stderr. A path that starts with '-' works where a command takes one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from glave_tasks.cli import main
from tests.quality.test_expectations import clean_record

from .conftest import Ledger

pytestmark = pytest.mark.faults

# Twelve records as the method's reference sample names them: seven of its YouTube ids start with '_'.
UNDERSCORE = ["_Xo5jB0z-IQ", "_0a1b2c3d4e", "_abcDEF123_", "__double", "_x", "_nested-in", "_last"]
DASH = ["-dash-start", "--double-dash"]
PLAIN = ["plain1", "plain2", "summary"]  # 'summary' is a real record: names never decide


def write_folder(folder: Path) -> dict[str, str]:
    """The twelve records, plus files that are not records: relative path -> expected reason."""
    (folder / "sub").mkdir(parents=True)
    for vid in UNDERSCORE + DASH + PLAIN:
        (folder / ("sub" if vid == "_nested-in" else ".") / f"{vid}.json").write_text(json.dumps(clean_record()))
    (folder / "dataset_card.json").write_text(json.dumps({"glave_side_file": "dataset card", "counts": {}}))
    (folder / "_broken.json").write_text('{"scene_list": ')
    (folder / "-config.json").write_text(json.dumps({"not": "a record"}))
    return {"dataset_card.json": "side_file", "_broken.json": "unreadable", "-config.json": "not_a_record"}


def test_evaluate_scores_every_record_whatever_its_name_and_lists_what_it_did_not(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ledger: Ledger) -> None:
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "-records"  # given relative, as '-records': an option-like path
    expected_not_taken = write_folder(folder)
    n_records = len(UNDERSCORE + DASH + PLAIN)
    ledger.inject("record_named_like_a_hidden_file", len(UNDERSCORE) + len(DASH))
    ledger.inject("bad_record_file", 2)
    result_file = tmp_path / "result.json"
    code = main(["evaluate", "--records", "-records", "--out", str(tmp_path / "out"), "--store", str(tmp_path / "store"),
                 "--repeats", "1", "--json", "--result-file", str(result_file)])
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert sorted(summary["scores"]["per_video"]) == sorted(UNDERSCORE + DASH + PLAIN)
    not_taken = {Path(n["path"]).relative_to(folder.resolve()).as_posix(): n["reason"] for n in summary["files_not_taken"]}
    assert not_taken == expected_not_taken
    assert all(n["detail"] for n in summary["files_not_taken"])
    # The same list on stderr, one line per file; bad files make the exit say so (side files do not).
    for name, reason in expected_not_taken.items():
        assert any(line.startswith("not scored: ") and name in line and reason in line for line in err.splitlines())
    assert code == 1 and "error: 2 file(s) could not be evaluated" in err and "Traceback" not in err
    assert json.loads(result_file.read_text())["files_not_taken"] == 3
    stored = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert len(stored["files_not_taken"]) == 3
    ledger.count("inputs_tried", n_records + len(expected_not_taken))
    ledger.count("inputs_accounted", len(summary["scores"]["per_video"]) + len(not_taken))
    ledger.survive("record_named_like_a_hidden_file", len(UNDERSCORE) + len(DASH))
    ledger.survive("bad_record_file", 2)


def test_a_folder_of_only_underscore_and_dash_records_evaluates_clean(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "-only"
    folder.mkdir()
    for vid in ("_a", "-b", "_-c"):
        (folder / f"{vid}.json").write_text(json.dumps(clean_record()))
    code = main(["evaluate", "--records", "-only", "--out", str(tmp_path / "out"), "--store", str(tmp_path / "store"),
                 "--repeats", "1", "--json"])
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert code == 0, err
    assert sorted(summary["scores"]["per_video"]) == ["-b", "_-c", "_a"] and summary["files_not_taken"] == []
    assert "not scored" not in err


def test_audit_takes_a_path_that_starts_with_a_dash(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    Path("-dash.json").write_text(json.dumps(clean_record()))
    Path("_under.json").write_text(json.dumps(clean_record()))
    code = main(["audit", "-dash.json", "_under.json", "--store", str(tmp_path / "store"), "--json"])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "No such option" not in err
    assert json.loads(out)["stats"]["records_read"] == 2 and code in (0, 1)
    # A mistyped option is still an error that names it, not a silent run id.
    code = main(["audit", "_under.json", "--jsn", "--store", str(tmp_path / "store")])
    _, err = capsys.readouterr()
    assert code == 2 and "--jsn" in err
