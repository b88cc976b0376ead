"""Where ``glave evaluate`` runs: the image family and pod resources its judge needs.

Light imports only: the ``glave_evaluate`` DAG calls this at parse time.
"""

from __future__ import annotations

from ..config import GlaveConfig
from ..contract import Resources
from ..language import engine_resources


def evaluate_requirements(config: GlaveConfig) -> tuple[str, Resources]:
    """A vLLM judge runs in the LLM image on a GPU; the embedded and served judges on CPU."""
    judge = config.evaluate.judge
    family = "llm" if judge.backend == "vllm" else "cpu"
    return family, Resources(cpu="1", memory="2Gi").union(engine_resources(judge))
