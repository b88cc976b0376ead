"""What the model-driven stages (caption, bridge, qa) share: one engine from
``engine``, built once per process, its resources, and its ids in the fingerprint."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from ..config import GlaveConfig
from ..contract import Resources, ShardContext, Stage

if TYPE_CHECKING:
    from .levels import LevelRunner


class EngineStage(Stage):
    family = "llm"
    cpu_memory: ClassVar[str] = "2Gi"  # memory when the engine runs elsewhere (rules, HTTP)

    def __init__(self, config: GlaveConfig, engine: Any = None) -> None:
        super().__init__(config)
        self.engine = engine  # injected by benchmarks/tests; otherwise built in setup()

    def resources(self) -> Resources:
        from . import engine_resources
        from .model_server import server_needed

        own = Resources(cpu="1", memory=self.cpu_memory)
        if server_needed(self.config):
            return own  # a client of the run's model server: a CPU pod
        return own.union(engine_resources(self.config.engine))

    def model_ids(self) -> dict[str, str]:
        from . import engine_ids

        return engine_ids(self.config.engine)

    def setup(self) -> None:
        if self.engine is None:
            from . import build_engine
            from .model_server import connect, server_needed

            if server_needed(self.config):
                self.engine = connect(self.config)  # the run's model server, started once per run
                return
            self.engine = build_engine(self.config.engine, cache_dir=self.config.store.local_cache,
                                       s3=self.config.store.s3)

    def level_runner(self) -> LevelRunner:
        """A runner that batches one dependency level per engine call for this shard."""
        from .levels import LevelRunner

        engine = self.config.engine
        return LevelRunner(self.engine, structured_retries=engine.structured_retries,
                           answer_token_cap=engine.max_model_len // 2, length_retry_factor=engine.length_retry_factor)

    @staticmethod
    def record_runner(ctx: ShardContext, runner: LevelRunner) -> None:
        """Per-video failures the runner collected, and its request counts as shard metrics."""
        for vid, (reason, detail) in runner.failures.items():
            ctx.fail(vid, reason, detail)
        for task, n in runner.requests_per_task.items():
            ctx.add_metric(f"requests_{task}", n)
        ctx.add_metric("engine_calls", runner.engine_calls)
