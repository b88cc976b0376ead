"""Config: defaults < YAML < overrides < GLAVE__ environment; invalid config fails fast, naming
the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from glave_tasks.config import GlaveConfig, load_config
from glave_tasks.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "glave.yaml"
    p.write_text(text)
    return p


def test_defaults_follow_the_reference_method() -> None:
    cfg = load_config(environ={})
    assert cfg.ingest.candidate_interval_s == 2.0
    assert cfg.ingest.similarity_threshold == 0.93
    assert cfg.ingest.max_duration_s == 180.0
    assert cfg.ingest.frame_max_side == 1024
    assert cfg.ingest.dense_interval_s == 0.5
    assert cfg.track.match_iou == 0.8 and cfg.track.min_object_px == 16


def test_yaml_values_are_loaded(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "run:\n  shard_size: 3\ningest:\n  similarity_threshold: 0.8\n"), environ={})
    assert cfg.run.shard_size == 3 and cfg.ingest.similarity_threshold == 0.8


def test_environment_overrides_yaml_and_is_parsed_as_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "run:\n  shard_size: 3\n")
    cfg = load_config(path, environ={
        "GLAVE__RUN__SHARD_SIZE": "5",
        "GLAVE__INGEST__SIMILARITY_BACKEND": "clip",
        "GLAVE__INGEST__CLIP_MODEL_PATH": "s3://models/clip-vit-l-14",
        "GLAVE__RUN__VIDEO_EXTENSIONS": "[.mp4]",
        "UNRELATED": "x",
    })
    assert cfg.run.shard_size == 5
    assert cfg.ingest.similarity_backend == "clip" and cfg.ingest.clip_model_path == "s3://models/clip-vit-l-14"
    assert cfg.run.video_extensions == [".mp4"]


def test_overrides_sit_between_yaml_and_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "run:\n  shard_size: 3\n  max_failure_ratio: 0.1\n")
    cfg = load_config(path, environ={"GLAVE__RUN__SHARD_SIZE": "7"},
                      overrides={"run": {"shard_size": 4, "max_failure_ratio": 0.2}})
    assert (cfg.run.shard_size, cfg.run.max_failure_ratio) == (7, 0.2)


@pytest.mark.parametrize("yaml_text, field", [
    ("run:\n  shard_size: 0\n", "run.shard_size"),
    ("ingest:\n  similarity_threshold: 1.5\n", "ingest.similarity_threshold"),
    ("ingest:\n  candidate_interval_s: nope\n", "ingest.candidate_interval_s"),
    ("ingest:\n  similarity_backend: sift\n", "ingest.similarity_backend"),
    ("ingest:\n  colour: red\n", "ingest.colour"),
    ("nonsense: 1\n", "nonsense"),
    ("ingest:\n  similarity_backend: clip\n", "ingest"),  # clip needs weights
])
def test_invalid_config_fails_fast_naming_the_field(tmp_path: Path, yaml_text: str, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, yaml_text), environ={})
    message = str(err.value)
    assert message.startswith("invalid config: ") and f"{field}:" in message
    assert "\n" not in message


def test_invalid_environment_override_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"run\.shard_size"):
        load_config(environ={"GLAVE__RUN__SHARD_SIZE": "-1"})


@pytest.mark.parametrize("text, problem", [
    ("run: [unclosed\n", "not valid YAML"),
    ("- a\n- b\n", "top level must be a mapping"),
])
def test_unreadable_yaml_is_a_config_error(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_config(write(tmp_path, text), environ={})


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml", environ={})


def test_config_round_trips_through_yaml(tmp_path: Path) -> None:
    cfg = load_config(environ={}, overrides={"run": {"shard_size": 2}, "validate": {"caption_min_chars": 5}})
    again = load_config(write(tmp_path, cfg.to_yaml()), environ={})
    assert again == cfg and again.validate_.caption_min_chars == 5


def test_section_hash_changes_only_with_its_sections() -> None:
    base = GlaveConfig()
    other_track = load_config(environ={}, overrides={"track": {"match_iou": 0.5}})
    other_ingest = load_config(environ={}, overrides={"ingest": {"similarity_threshold": 0.9}})
    assert base.section_hash("run", "ingest") == other_track.section_hash("run", "ingest")
    assert base.section_hash("run", "ingest") != other_ingest.section_hash("run", "ingest")


def test_config_is_read_from_s3(s3_endpoint: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").put_object(
        Bucket=s3_bucket, Key="conf/glave.yaml", Body=b"run:\n  shard_size: 6\n")
    # fsspec reads the config with the standard AWS endpoint variable before any store exists.
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    cfg = load_config(f"s3://{s3_bucket}/conf/glave.yaml", environ={})
    assert cfg.run.shard_size == 6
