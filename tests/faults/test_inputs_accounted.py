"""glave audit reads every record whatever its file name, keeps going past bad files, and lists
each file it did not take with the reason; side files of exports and reports are recognised by
what they say they are, never by their name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from glave_tasks.cli import main
from tests.quality.test_expectations import clean_record

from .conftest import Ledger


def test_audit_reads_every_record_and_lists_every_file_it_did_not_take(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, ledger: Ledger) -> None:
    folder = tmp_path / "records"
    (folder / "nested").mkdir(parents=True)
    records = {"_Xo5jB0z-IQ.json", "-dash-start.json", "summary.json", "dataset_card.json", "nested/plain.json"}
    for name in records:
        (folder / name).write_text(json.dumps(clean_record()))
    (folder / "broken.json").write_text('{"scene_list": ')  # truncated
    (folder / "latin1.json").write_bytes(b'{"caption": "caf\xe9"}')  # not UTF-8
    (folder / "config.json").write_text(json.dumps({"not": "a record"}))
    (folder / "card").mkdir()
    (folder / "card" / "dataset_card.json").write_text(json.dumps({"glave_side_file": "dataset card", "counts": {}}))
    tried = len(records) + 4
    ledger.inject("bad_audit_file", 3)

    out_json = tmp_path / "audit.json"
    code = main(["audit", str(folder), "--store", str(tmp_path / "store"), "--json-out", str(out_json)])
    out, err = capsys.readouterr()
    audit = json.loads(out_json.read_text())
    assert audit["stats"]["records_read"] == len(records) and audit["stats"]["videos"] == len(records)
    not_taken = {Path(n["path"]).relative_to(folder).as_posix(): n["reason"] for n in audit["stats"]["files_not_taken"]}
    assert not_taken == {"broken.json": "unreadable", "latin1.json": "unreadable", "config.json": "not_a_record",
                         "card/dataset_card.json": "side_file"}
    # Bad files do not stop the audit, and they do not pass silently either.
    assert code == 1 and "error: 3 file(s) could not be audited" in err and "Traceback" not in err
    assert "not taken: " in out and "broken.json: unreadable" in out
    ledger.count("inputs_tried", tried)
    ledger.count("inputs_accounted", audit["stats"]["records_read"] + len(not_taken))
    assert audit["stats"]["records_read"] + len(not_taken) == tried
    ledger.survive("bad_audit_file", 3)


def test_an_export_audits_clean_with_its_side_files_recognised(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "published"
    (folder / "json").mkdir(parents=True)
    (folder / "json" / "_abc.json").write_text(json.dumps(clean_record()))
    (folder / "dataset_card.json").write_text(json.dumps({"glave_side_file": "dataset card", "name": "glave"}))
    out_json = tmp_path / "audit.json"
    assert main(["audit", str(folder), "--store", str(tmp_path / "store"), "--json-out", str(out_json)]) == 0
    audit = json.loads(out_json.read_text())
    assert audit["stats"]["records_read"] == 1
    assert [n["reason"] for n in audit["stats"]["files_not_taken"]] == ["side_file"]
