"""Structural checks as Great Expectations 1.x suites (ephemeral context, pandas data source).

Each expectation carries ``meta={"check": <name>}``; a check's value is the largest share of
unexpected rows among its expectations (1.0 when a table-level expectation fails), so GX does the
validation and the thresholds in :mod:`.thresholds` decide pass/warn/fail.

Data Docs are not built while validating: each suite and its validation result are returned as
JSON (``SuiteOutcome.documents``), stored with the validate shard, and the report builds one
Data Docs site for the whole run from them (:func:`build_data_docs`): one site build per run
instead of one per check per shard.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from .. import schemas

log = logging.getLogger(__name__)


@dataclass
class SuitePlan:
    """One table (a DataFrame) and the expectations to run on it."""

    name: str
    frame: Any  # pandas.DataFrame
    expectations: list[Any] = field(default_factory=list)


@dataclass
class SuiteOutcome:
    values: dict[str, float]  # check name -> worst unexpected share
    details: dict[str, list[str]]
    evaluated: int
    # {"suite": ExpectationSuite JSON, "result": its validation result JSON} per validated plan
    documents: list[dict[str, Any]] = field(default_factory=list)


def _gxe():
    import great_expectations.expectations as gxe

    return gxe


def record_plans(frames: dict[str, list[dict[str, Any]]], min_chars: int, max_chars: int) -> list[SuitePlan]:
    """Suites over the GLaVE record frames (same for a run's own records and external files)."""
    import pandas as pd

    gxe = _gxe()

    def m(name: str) -> dict[str, str]:
        return {"check": name}

    videos = pd.DataFrame(frames["videos"], columns=["video_id", "source", "n_keyframes", "n_scenes", "n_qa", "streams_aligned", "missing_keys"])
    captions = pd.DataFrame(frames["captions"], columns=["video_id", "kind", "index", "text", "chars"])
    scenes = pd.DataFrame(frames["scenes"], columns=["video_id", "scene_index", "frame_start", "frame_end", "scene_hint", "caption", "n_keyframes"])
    qa = pd.DataFrame(frames["qa"], columns=["video_id", "qa_uid", "scope", "scene_index", "dimension", "question", "answer", "options", "n_options", "answer_choice"])
    qa["option_format_ok"] = [
        len(opts) == 4 and all(str(o).startswith(f"{L}. ") for o, L in zip(opts, schemas.ANSWER_LETTERS))
        for opts in qa["options"]
    ] if len(qa) else pd.Series(dtype=bool)
    qa = qa.drop(columns=["options"])
    scenes["n_keyframes_minus_1"] = scenes["n_keyframes"] - 1
    videos["n_scenes_max"] = videos["n_keyframes"].clip(lower=1)
    return [
        SuitePlan("record_videos", videos, [
            gxe.ExpectColumnValuesToBeInSet(column="missing_keys", value_set=[""], meta=m("record.keys")),
            gxe.ExpectColumnValuesToBeInSet(column="streams_aligned", value_set=[True], meta=m("record.streams_aligned")),
            gxe.ExpectColumnValuesToBeBetween(column="n_keyframes", min_value=1, meta=m("videos.keyframes_per_video")),
            gxe.ExpectColumnValuesToBeBetween(column="n_scenes", min_value=1, meta=m("videos.scenes_per_video")),
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="n_scenes_max", column_B="n_scenes", or_equal=True,
                                                        meta=m("videos.scenes_per_video")),
            gxe.ExpectColumnValuesToBeBetween(column="n_qa", min_value=1, meta=m("videos.qa_per_video")),
        ]),
        SuitePlan("record_scenes", scenes, [
            gxe.ExpectColumnValuesToNotBeNull(column="frame_start", meta=m("scenes.frame_range")),
            gxe.ExpectColumnValuesToBeBetween(column="frame_start", min_value=0, meta=m("scenes.frame_range")),
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="frame_end", column_B="frame_start", or_equal=True,
                                                        meta=m("scenes.frame_range")),
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="n_keyframes_minus_1", column_B="frame_end", or_equal=True,
                                                        meta=m("scenes.frame_range")),
        ]),
        SuitePlan("record_captions", captions, [
            gxe.ExpectColumnValuesToNotBeNull(column="text", meta=m("captions.non_empty")),
            gxe.ExpectColumnValuesToBeBetween(column="chars", min_value=1, meta=m("captions.non_empty")),
            gxe.ExpectColumnValuesToBeBetween(column="chars", min_value=min_chars, max_value=max_chars,
                                              meta=m("captions.length_bounds")),
        ]),
        SuitePlan("record_qa", qa, [
            gxe.ExpectColumnValuesToNotBeNull(column="question", meta=m("qa.fields_present")),
            gxe.ExpectColumnValuesToNotBeNull(column="answer", meta=m("qa.fields_present")),
            gxe.ExpectColumnValuesToNotBeNull(column="dimension", meta=m("qa.fields_present")),
            gxe.ExpectColumnValueLengthsToBeBetween(column="question", min_value=1, meta=m("qa.fields_present")),
            gxe.ExpectColumnValuesToBeBetween(column="n_options", min_value=4, max_value=4, meta=m("qa.options_count")),
            gxe.ExpectColumnValuesToBeInSet(column="answer_choice", value_set=schemas.ANSWER_LETTERS, meta=m("qa.answer_letter")),
            gxe.ExpectColumnValuesToNotBeNull(column="answer_choice", meta=m("qa.answer_letter")),
            gxe.ExpectColumnValuesToBeInSet(column="dimension", value_set=schemas.ALL_DIMENSIONS, meta=m("qa.dimension_allowed")),
            gxe.ExpectColumnValuesToBeUnique(column="qa_uid", meta=m("qa.unique_ids")),
            gxe.ExpectColumnValuesToBeInSet(column="option_format_ok", value_set=[True], meta=m("qa.option_format")),
        ]),
    ]


# Per-table keys that must be unique and value ranges that must hold, beyond schema and nulls.
_UNIQUE = {
    "videos": ["video_id"], "probes": ["video_id"], "keyframes": ["video_id", "keyframe_index"],
    "dense_frames": ["video_id", "sample_index"], "cuts": ["video_id", "cut_index"],
    "tracks": ["video_id", "sample_index", "track_id"], "marks": ["video_id", "keyframe_index"],
    "overviews": ["video_id"], "local_captions": ["video_id", "keyframe_index", "stream"],
    "scenes": ["video_id", "scene_index"], "video_captions": ["video_id"], "qa": ["qa_id"],
}
_RANGES = {
    "probes": [("duration_s", 0, None), ("fps", 0, None), ("width", 1, None), ("height", 1, None)],
    "keyframes": [("keyframe_index", 0, None), ("timestamp_s", 0, None)],
    "tracks": [("score", 0, 1), ("track_id", 0, None)],
    "scenes": [("frame_start", 0, None)],
    "video_captions": [("num_scenes", 1, None)],
}
_SETS = {
    "local_captions": [("stream", ["different", "attention", "merged"])],
    "qa": [("answer_choice", schemas.ANSWER_LETTERS), ("dimension", schemas.ALL_DIMENSIONS)],
}


def table_plan(name: str, table: pa.Table) -> SuitePlan:
    """Suite over one raw run table: schema, non-null columns, ranges, allowed values, unique keys."""
    gxe = _gxe()
    schema = schemas.TABLES[name]
    # Lists and structs stay out of the frame: GX judges scalar columns; the schema check sees all names.
    scalar = [f.name for f in schema if not (pa.types.is_list(f.type) or pa.types.is_struct(f.type))]
    frame = table.select([c for c in scalar if c in table.column_names]).to_pandas()
    for f in schema:
        if f.name not in frame.columns and f.name in table.column_names:
            frame[f.name] = 0  # placeholder so the column-set expectation sees every column
    check = f"table.{name}"
    meta = {"check": check}
    exps: list[Any] = [gxe.ExpectTableColumnsToMatchSet(column_set=list(schema.names), exact_match=True, meta=meta)]
    exps += [gxe.ExpectColumnValuesToNotBeNull(column=f.name, meta=meta) for f in schema if not f.nullable and f.name in scalar]
    for col, lo, hi in _RANGES.get(name, []):
        exps.append(gxe.ExpectColumnValuesToBeBetween(column=col, min_value=lo, max_value=hi, meta=meta))
    for col, values in _SETS.get(name, []):
        exps.append(gxe.ExpectColumnValuesToBeInSet(column=col, value_set=values, meta=meta))
    if name == "tracks":
        exps.append(gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="x2", column_B="x1", or_equal=True, meta=meta))
    if name == "scenes":
        exps.append(gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="frame_end", column_B="frame_start", or_equal=True, meta=meta))
    keys = _UNIQUE.get(name)
    if keys and len(keys) == 1:
        exps.append(gxe.ExpectColumnValuesToBeUnique(column=keys[0], meta=meta))
    elif keys:
        exps.append(gxe.ExpectCompoundColumnsToBeUnique(column_list=keys, meta=meta))
    return SuitePlan(f"table_{name}", frame, exps)


def _context() -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return context


_local = threading.local()


def _frames_batch_definition() -> Any:
    """One whole-DataFrame batch definition per thread, reused by every shard the process
    validates: each table is a batch of it (the frame is a batch parameter), so no data source,
    asset, suite or validation definition is saved per table or per shard. GX contexts are not
    shared across threads."""
    if getattr(_local, "batch_definition", None) is None:
        source = _context().data_sources.add_pandas("glave")
        _local.batch_definition = source.add_dataframe_asset("tables").add_batch_definition_whole_dataframe("all")
    return _local.batch_definition


# Counts and a sample of unexpected values per expectation: what the checks and their details read.
# SUMMARY would add value counts and index lists that nothing reads, each a metric per expectation.
RESULT_FORMAT = "BASIC"


def run_suites(plans: list[SuitePlan], docs_dir: str | Path | None = None) -> SuiteOutcome:
    """Validate every plan; build Data Docs into ``docs_dir`` (once, at the end) when given."""
    import great_expectations as gx

    batch_definition = _frames_batch_definition()
    documents: list[dict[str, Any]] = []
    values: dict[str, float] = {}
    details: dict[str, list[str]] = defaultdict(list)
    evaluated = 0
    for plan in plans:
        for exp in plan.expectations:
            values.setdefault(exp.meta["check"], 0.0)
        if plan.frame.empty:
            continue  # nothing to judge; the checks stay at 0 (videos/QA counts catch absence)
        suite = gx.ExpectationSuite(name=plan.name, expectations=plan.expectations)
        batch = batch_definition.get_batch(batch_parameters={"dataframe": plan.frame})
        suite_result = batch.validate(suite, result_format=RESULT_FORMAT)
        documents.append({"suite": suite.to_json_dict(), "result": suite_result.to_json_dict()})
        for r in suite_result.results:
            evaluated += 1
            check = r.expectation_config.meta["check"]
            share = _unexpected_share(r)
            values[check] = max(values[check], share)
            if not r.success:
                kw = {k: v for k, v in r.expectation_config.kwargs.items() if k in ("column", "column_A", "column_B", "column_list")}
                sample = (r.result or {}).get("partial_unexpected_list") or (r.result or {}).get("observed_value")
                details[check].append(f"{plan.name}: {r.expectation_config.type} {kw} unexpected={share:.3f} e.g. {str(sample)[:160]}")
    if docs_dir is not None:
        build_data_docs([("validation", d) for d in documents], docs_dir)
    return SuiteOutcome(values, dict(details), evaluated, documents)


def build_data_docs(documents: list[tuple[str, dict[str, Any]]], docs_dir: str | Path) -> None:
    """One Data Docs site from stored suites and validation results, each under a run name
    (the report: one per validate shard). One site build, whatever the number of suites."""
    import great_expectations as gx
    from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResultSchema
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    Path(docs_dir).mkdir(parents=True, exist_ok=True)
    context = _context()
    context.add_data_docs_site(site_name="glave", site_config={
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    })
    schema = ExpectationSuiteValidationResultSchema()
    suites: set[str] = set()
    for run_name, doc in documents:
        suite = doc["suite"]
        if suite["name"] not in suites:  # the same suites in every shard: the first one stands for all
            context.suites.add(gx.ExpectationSuite(name=suite["name"], expectations=suite.get("expectations", []),
                                                   meta=suite.get("meta") or {}))
            suites.add(suite["name"])
        key = ValidationResultIdentifier(expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite["name"]),
                                         run_id=RunIdentifier(run_name=run_name), batch_identifier=suite["name"])
        context.validation_results_store.set(key, schema.load(doc["result"]))
    # Only our site: the ephemeral context's default site would be built into a fresh temp
    # folder (about 5 MB) that nothing ever removes.
    context.build_data_docs(site_names=["glave"])


def _unexpected_share(r: Any) -> float:
    res = r.result or {}
    if r.success:
        return 0.0
    if res.get("unexpected_percent") is not None:
        return float(res["unexpected_percent"]) / 100.0
    return 1.0  # table-level expectation (column set, compound) failed outright
