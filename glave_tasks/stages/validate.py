"""Validate stage: every table the shard produced, judged by Great Expectations suites and the
model-based checks of :mod:`glave_tasks.quality`; results go to the ``checks`` table (critical
failures block publish). Its Great Expectations suites and results are among its files (the report
builds the run's Data Docs from them). The sentence embeddings its checks compare come from the
QA stage's ``embeddings`` table; only a text missing there is embedded here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..config import GlaveConfig
from ..contract import Resources, ShardContext, Stage

if TYPE_CHECKING:
    import pyarrow as pa

GX_RESULTS = "gx_results.json"  # the shard's Great Expectations suites and validation results


class ValidateStage(Stage):
    name = "validate"
    family = "cpu"
    needs = ("ingest", "track", "caption", "bridge", "qa")
    outputs = ("checks",)
    timeout_min = 60
    work_in_pool = True
    warm_imports = ("great_expectations",)
    config_sections = ("run", "validate", "qa", "evaluate")  # evaluate: the self-consistency gate

    def __init__(self, config: GlaveConfig) -> None:
        super().__init__(config)

    def resources(self) -> Resources:
        return Resources(cpu="1", memory="4Gi")

    def model_ids(self) -> dict[str, str]:
        return {"embedding": self.config.qa.embedding_model}

    def process(self, ctx: ShardContext) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        from .. import schemas
        from ..parallel import run_in_pool
        from ..store import decode_table
        from . import table_owners

        tables: dict[str, pa.Table] = {}
        for name, stage in table_owners().items():
            # The embeddings table is a store of vectors for the checks, not data they judge.
            if stage in self.needs and name != "embeddings":
                tables[name] = ctx.read(stage, name)
        vectors = None
        if ctx.has_upstream("qa", "embeddings"):  # older shards: encode everything
            vectors = ctx.read("qa", "embeddings", ["text_hash", "model", "vector"])
        ids = pa.array([v.video_id for v in ctx.videos], pa.string())
        videos = ctx.store.read_table(ctx.layout.videos_table, schemas.VIDEOS)
        tables["videos"] = videos.filter(pc.is_in(videos["video_id"], value_set=ids))
        # Every upstream failure of the shard, not only those of the videos still in it.
        errors = [decode_table(ctx.read_upstream_bytes(s, "errors"), ctx.upstream_key(s, "errors"), schemas.ERRORS)
                  for s in self.needs if ctx.has_upstream(s, "errors")]
        tables["errors"] = pa.concat_tables(errors) if errors else schemas.empty(schemas.ERRORS)
        # On one machine the judging runs in the run's worker pool, so shards validate side by side.
        rows, documents, metrics = run_in_pool(self, "judge", tables, vectors, [v.video_id for v in ctx.videos])
        # The suites and their validation results are part of the shard's output, committed with
        # it; the report builds one Data Docs site for the run from those of committed shards.
        ctx.put_bytes(documents, GX_RESULTS)
        ctx.write("checks", rows)
        for name, value in metrics.items():
            ctx.add_metric(name, value)

    def judge(self, tables: dict[str, pa.Table], vectors: pa.Table | None,
              video_ids: list[str]) -> tuple[list[dict[str, Any]], bytes, dict[str, float]]:
        """The shard's checks: (check rows, Great Expectations documents as JSON, metrics)."""
        import json

        from ..quality.assess import assess
        from ..quality.embeddings import embedded_count, seed_from_table
        from ..run_records import build_records, tracker_facts

        metrics: dict[str, float] = {}
        if vectors is not None:
            metrics["embeddings_from_table"] = seed_from_table(vectors)
        embedded_before = embedded_count()
        records = build_records(tables, video_ids)
        track_ids, labels = tracker_facts(tables)
        result = assess(records, self.config, tables=tables, track_ids=track_ids, labels=labels)
        if self.config.evaluate.gate.enabled:
            from ..evaluation.gate import self_consistency

            gate = self_consistency(records, self.config)
            result.checks.append(gate.check)
            metrics["self_consistency_sampled"] = gate.sampled
            for dim, counts in gate.per_dimension.items():
                metrics[f"self_consistency_unsupported.{dim}"] = counts["unsupported"]
        metrics["texts_embedded"] = embedded_count() - embedded_before  # texts the table lacked
        for status in ("pass", "warn", "fail", "skip"):
            metrics[f"checks_{status}"] = sum(c.status == status for c in result.checks)
        metrics["checks_blocking"] = len(result.blocking)
        metrics["expectations_evaluated"] = result.stats["expectations_evaluated"]
        return [c.row() for c in result.checks], json.dumps(result.documents, default=str).encode(), metrics
