"""Every table the pipeline writes, with its explicit Arrow schema. One module, one truth.

Tables are per stage and shard (``runs/<run>/<stage>/shard-<k>/<table>.parquet``). Rows that a
model or rule produced carry provenance columns: which generator, model id and revision, prompt
version, token counts and latency.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

# Provenance carried by every generated row.
PROVENANCE = [
    pa.field("generator", pa.string(), nullable=False),  # backend kind: rules | vllm | openai | classical | ultralytics+sam2
    pa.field("model_id", pa.string()),
    pa.field("model_revision", pa.string()),
    pa.field("prompt_version", pa.string()),
    pa.field("prompt_tokens", pa.int64()),
    pa.field("completion_tokens", pa.int64()),
    pa.field("latency_s", pa.float64()),
]

VIDEOS = pa.schema([
    pa.field("video_id", pa.string(), nullable=False),  # content hash prefix, stable across runs
    pa.field("content_hash", pa.string(), nullable=False),  # sha256 of the file bytes
    pa.field("source_uri", pa.string(), nullable=False),
    pa.field("file_name", pa.string(), nullable=False),
    pa.field("size_bytes", pa.int64(), nullable=False),
    pa.field("shard", pa.int32(), nullable=False),
    # A local file's stat while discover hashed it (with size_bytes): ingest trusts content_hash
    # without reading the file again while they still match. Null for s3:// inputs, for a file
    # written moments before (its timestamps could repeat), and in stores older than these columns.
    pa.field("file_mtime_ns", pa.int64()),
    pa.field("file_ctime_ns", pa.int64()),
    pa.field("file_inode", pa.uint64()),
])
# Run bookkeeping that exported datasets leave out: it describes a file on the machine discover
# ran on, not the video, and would make two exports of the same inputs differ.
UNPUBLISHED_COLUMNS: dict[str, tuple[str, ...]] = {"videos": ("file_mtime_ns", "file_ctime_ns", "file_inode")}

ERRORS = pa.schema([
    pa.field("video_id", pa.string(), nullable=False),
    pa.field("stage", pa.string(), nullable=False),
    pa.field("reason", pa.string(), nullable=False),
    pa.field("detail", pa.string()),
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("shard", pa.int32(), nullable=False),
    pa.field("recorded_at", pa.timestamp("ms", tz="UTC"), nullable=False),
])

PROBES = pa.schema([
    pa.field("video_id", pa.string(), nullable=False),
    pa.field("duration_s", pa.float64(), nullable=False),
    pa.field("fps", pa.float64(), nullable=False),
    pa.field("width", pa.int32(), nullable=False),
    pa.field("height", pa.int32(), nullable=False),
    pa.field("codec", pa.string(), nullable=False),
    pa.field("has_audio", pa.bool_(), nullable=False),
    pa.field("frames_decoded", pa.int64(), nullable=False),
    pa.field("first_content_s", pa.float64(), nullable=False),  # after leading blank frames
    # Set when the video was longer than ingest.max_duration_s and was truncated there (seconds);
    # source_duration_s is what the container declared (0 when it does not say).
    pa.field("truncated_at_s", pa.float64()),
    pa.field("source_duration_s", pa.float64()),
    # Degrees counter-clockwise the frames were turned to show them upright (the container's
    # display matrix); width and height above are as shown, after the turn.
    pa.field("rotation", pa.int32()),
])

KEYFRAMES = pa.schema([
    pa.field("video_id", pa.string(), nullable=False),
    pa.field("keyframe_index", pa.int32(), nullable=False),
    pa.field("frame_index", pa.int64(), nullable=False),
    pa.field("timestamp_s", pa.float64(), nullable=False),
    pa.field("similarity", pa.float64()),  # to the previous keyframe; null for the first
    pa.field("shot_index", pa.int32(), nullable=False),
    pa.field("image_key", pa.string(), nullable=False),
    pa.field("width", pa.int32(), nullable=False),
    pa.field("height", pa.int32(), nullable=False),
])

DENSE_FRAMES = pa.schema([
    pa.field("video_id", pa.string(), nullable=False),
    pa.field("sample_index", pa.int32(), nullable=False),
    pa.field("frame_index", pa.int64(), nullable=False),
    pa.field("timestamp_s", pa.float64(), nullable=False),
    pa.field("keyframe_index", pa.int32()),  # set when this sample is also a keyframe
    pa.field("image_key", pa.string(), nullable=False),
])

CUTS = pa.schema([
    pa.field("video_id", pa.string(), nullable=False),
    pa.field("cut_index", pa.int32(), nullable=False),
    pa.field("frame_index", pa.int64(), nullable=False),
    pa.field("timestamp_s", pa.float64(), nullable=False),
    pa.field("keyframe_index", pa.int32(), nullable=False),  # first keyframe at or after the cut
])

MASK_RLE = pa.struct([
    pa.field("height", pa.int32(), nullable=False),
    pa.field("width", pa.int32(), nullable=False),
    pa.field("counts", pa.list_(pa.int32()), nullable=False),  # column-major run lengths, starting with zeros (COCO order)
])

TRACKS = pa.schema([
    pa.field("video_id", pa.string(), nullable=False),
    pa.field("sample_index", pa.int32(), nullable=False),
    pa.field("frame_index", pa.int64(), nullable=False),
    pa.field("timestamp_s", pa.float64(), nullable=False),
    pa.field("track_id", pa.int32(), nullable=False),
    pa.field("label", pa.string(), nullable=False),
    pa.field("score", pa.float32(), nullable=False),
    pa.field("x1", pa.float32(), nullable=False),
    pa.field("y1", pa.float32(), nullable=False),
    pa.field("x2", pa.float32(), nullable=False),
    pa.field("y2", pa.float32(), nullable=False),
    pa.field("mask", MASK_RLE),
    pa.field("backend", pa.string(), nullable=False),
    pa.field("model_id", pa.string()),
])

MARKS = pa.schema([
    pa.field("video_id", pa.string(), nullable=False),
    pa.field("keyframe_index", pa.int32(), nullable=False),
    pa.field("boxes_json", pa.string(), nullable=False),  # {"<id>": {"x1":..,"y1":..,"x2":..,"y2":..}}
    pa.field("object_ids", pa.list_(pa.int32()), nullable=False),
    pa.field("marked_image_key", pa.string(), nullable=False),
    pa.field("backend", pa.string(), nullable=False),
])

OVERVIEWS = pa.schema([
    pa.field("video_id", pa.string(), nullable=False),
    pa.field("overview_caption", pa.string(), nullable=False),
    *PROVENANCE,
])

LOCAL_CAPTIONS = pa.schema([
    pa.field("video_id", pa.string(), nullable=False),
    pa.field("keyframe_index", pa.int32(), nullable=False),
    pa.field("stream", pa.string(), nullable=False),  # different | attention | merged
    pa.field("text", pa.string(), nullable=False),
    *PROVENANCE,
])

SCENES = pa.schema([
    pa.field("video_id", pa.string(), nullable=False),
    pa.field("scene_index", pa.int32(), nullable=False),
    pa.field("frame_start", pa.int32(), nullable=False),  # keyframe indices, inclusive
    pa.field("frame_end", pa.int32(), nullable=False),
    pa.field("scene_hint", pa.string(), nullable=False),
    pa.field("camera_note", pa.string(), nullable=False),
    pa.field("caption", pa.string(), nullable=False),
    *PROVENANCE,
])

VIDEO_CAPTIONS = pa.schema([
    pa.field("video_id", pa.string(), nullable=False),
    pa.field("caption", pa.string(), nullable=False),
    pa.field("num_scenes", pa.int32(), nullable=False),
    *PROVENANCE,
])

SCENE_DIMENSIONS = [
    "Spatial", "Description-Scene", "Description-Human", "Description-Object", "Count", "Binary",
    "Fine Grained Action", "Object Direction", "Camera Direction", "Camera Shot", "Speed",
    "Attribute Change", "Visual-cue",
]
VIDEO_DIMENSIONS = ["Temporal", "Plot Understanding", "Time Order", "Causal"]
ALL_DIMENSIONS = SCENE_DIMENSIONS + VIDEO_DIMENSIONS
ANSWER_LETTERS = ["A", "B", "C", "D"]

QA = pa.schema([
    pa.field("video_id", pa.string(), nullable=False),
    pa.field("qa_id", pa.string(), nullable=False),  # unique within the run: <video_id>-<scope>-<n>
    pa.field("scene_index", pa.int32()),  # null for video-level (general) QA
    pa.field("dimension", pa.string(), nullable=False),
    pa.field("question", pa.string(), nullable=False),
    pa.field("answer", pa.string(), nullable=False),
    pa.field("options", pa.list_(pa.string()), nullable=False),  # ["A. ...", "B. ...", "C. ...", "D. ..."]
    pa.field("answer_choice", pa.string(), nullable=False),
    *PROVENANCE,
])

# Sentence-embedding vectors the QA stage computed for the texts later checks compare (questions,
# answers, options, caption sentences), so validate does not embed them again.
EMBEDDINGS = pa.schema([
    pa.field("video_id", pa.string(), nullable=False),
    pa.field("text_hash", pa.string(), nullable=False),  # quality.embeddings.text_hash of the text
    pa.field("model", pa.string(), nullable=False),  # embedding model id (qa.embedding_model, judge's)
    pa.field("vector", pa.list_(pa.float32()), nullable=False),  # unit vector
])

CHECKS = pa.schema([
    pa.field("check", pa.string(), nullable=False),
    pa.field("table", pa.string(), nullable=False),
    pa.field("status", pa.string(), nullable=False),  # pass | warn | fail
    pa.field("value", pa.float64()),
    pa.field("warn_threshold", pa.float64()),
    pa.field("fail_threshold", pa.float64()),
    pa.field("critical", pa.bool_(), nullable=False),
    pa.field("detail", pa.string()),
])

# Table name -> schema, for the store, the validator and exports.
TABLES: dict[str, pa.Schema] = {
    "videos": VIDEOS,
    "errors": ERRORS,
    "probes": PROBES,
    "keyframes": KEYFRAMES,
    "dense_frames": DENSE_FRAMES,
    "cuts": CUTS,
    "tracks": TRACKS,
    "marks": MARKS,
    "overviews": OVERVIEWS,
    "local_captions": LOCAL_CAPTIONS,
    "scenes": SCENES,
    "video_captions": VIDEO_CAPTIONS,
    "qa": QA,
    "embeddings": EMBEDDINGS,
    "checks": CHECKS,
}
# Kept for later stages' checks, not annotation data: readers of "every table" leave them out.
WORKING_TABLES = frozenset({"embeddings"})


def empty(schema: pa.Schema) -> pa.Table:
    return schema.empty_table()


def rows_to_table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """Build a table from row dicts, checked against its schema."""
    return pa.Table.from_pylist(rows, schema=schema)


# -- caption evaluation (glave_tasks/evaluation): runs/<run>/evaluation/<question set>/<table>.parquet --
EVAL_VOTES = pa.schema([  # one row per question and repeat
    pa.field("video_id", pa.string(), nullable=False),
    pa.field("question_id", pa.string(), nullable=False),
    pa.field("repeat", pa.int32(), nullable=False),
    pa.field("letter", pa.string()),  # A-E; null: unparsable after retries
    pa.field("error", pa.string()),
    pa.field("error_detail", pa.string()),
    pa.field("text", pa.string()),  # the judge's reply (truncated)
    pa.field("attempts", pa.int32(), nullable=False),
    *PROVENANCE,
])

EVAL_ANSWERS = pa.schema([  # one row per judged question
    pa.field("video_id", pa.string(), nullable=False),
    pa.field("question_id", pa.string(), nullable=False),
    pa.field("scene", pa.int32(), nullable=False),  # -1: the whole video
    pa.field("dimension", pa.string(), nullable=False),
    pa.field("answer", pa.string(), nullable=False),  # the correct letter
    pa.field("final", pa.string()),  # majority letter A-E; null when no vote was valid
    pa.field("status", pa.string(), nullable=False),  # answered | unparsable
    pa.field("correct", pa.bool_(), nullable=False),
    pa.field("tie", pa.bool_(), nullable=False),
    pa.field("votes", pa.list_(pa.string()), nullable=False),
    pa.field("judge", pa.string(), nullable=False),  # judge backend and model (embedded judges say so)
])

EVAL_SCORES = pa.schema([
    pa.field("scope", pa.string(), nullable=False),  # overall | dimension | video
    pa.field("key", pa.string(), nullable=False),
    pa.field("questions", pa.int64(), nullable=False),
    pa.field("correct", pa.int64(), nullable=False),
    pa.field("accuracy", pa.float64()),
    pa.field("e_rate", pa.float64()),
    pa.field("unparsable", pa.int64(), nullable=False),
    pa.field("ties", pa.int64(), nullable=False),
    pa.field("vote_accuracy", pa.float64()),
    pa.field("judge", pa.string(), nullable=False),
])

EVAL_SKIPPED = pa.schema([  # questions not scored, with the reason (never silently dropped)
    pa.field("video_id", pa.string(), nullable=False),
    pa.field("question_id", pa.string(), nullable=False),
    pa.field("dimension", pa.string(), nullable=False),
    pa.field("reason", pa.string(), nullable=False),  # invalid_question | video_not_in_run
    pa.field("detail", pa.string()),
])
