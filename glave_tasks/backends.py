"""Backend registries: config names a backend, this module finds its class.

One idiom for every family: the config value is the registry key and the name of the backend's
module (``track.detector.backend: ultralytics`` -> ``glave_tasks/vision/detectors/ultralytics.py``).
Adding a backend is its module plus one line here; no stage changes.

Every backend class declares, from its config alone and without loading a model, the model ids
that shape its output (they enter the stage fingerprint, the commit marker and MLflow) and the
resources its pod needs (see :class:`Backend`). Stages ask the configured backend for both and
never name one. Backend modules import heavy libraries only inside methods, so asking a backend
class is cheap enough for the Airflow side that renders pods.
"""

from __future__ import annotations

import importlib
from typing import Any, ClassVar

from .contract import Resources
from .errors import ConfigError

REGISTRY: dict[str, dict[str, str]] = {
    # kind -> backend name (= config value = module name) -> "module:Class"
    "detector": {
        "classical": "glave_tasks.vision.detectors.classical:ClassicalDetector",
        "ultralytics": "glave_tasks.vision.detectors.ultralytics:UltralyticsDetector",
    },
    "segmenter": {
        "bytetrack": "glave_tasks.vision.segmenters.bytetrack:ByteTrackSegmenter",
        "sam2": "glave_tasks.vision.segmenters.sam2:Sam2Propagator",
    },
    "similarity": {
        "layout": "glave_tasks.media.similarity.layout:LayoutSimilarity",
        "histogram": "glave_tasks.media.similarity.histogram:HistogramSimilarity",
        "clip": "glave_tasks.media.similarity.clip:ClipSimilarity",
    },
    "engine": {
        "rules": "glave_tasks.language.engines.rules:RulesEngine",
        "vllm": "glave_tasks.language.engines.vllm:VLLMEngine",
        "openai": "glave_tasks.language.engines.openai:OpenAIEngine",
        # Caption evaluation only (evaluate.judge.backend): sentence embeddings, no LLM.
        "embedded": "glave_tasks.evaluation.embedded:EmbeddedJudge",
    },
}


class Backend:
    """What a backend class declares about itself. ``config`` is what its constructor gets
    (detector: ``DetectorConfig``, segmenter: ``TrackConfig``, engine: ``EngineConfig``,
    similarity: ``IngestConfig``)."""

    # Modules its work imports (inside its methods, so declaring them costs nothing): the warm
    # launcher imports them once (those that start threads or a device at import excepted), and a
    # stage whose work runs in pool workers warms its backends' (:class:`BackendImports`).
    warm_imports: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def model_ids(cls, config: Any) -> dict[str, str]:
        """Model ids, revisions or weights URIs that shape the output (none: rule-based code)."""
        return {}

    @classmethod
    def resources(cls, config: Any) -> Resources:
        """What the pod needs to run this backend; a stage takes the union with its own needs."""
        return Resources()


def register(kind: str, name: str, target: str) -> None:
    REGISTRY.setdefault(kind, {})[name] = target


def known(kind: str) -> list[str]:
    """Backend names registered for ``kind``, sorted."""
    return sorted(REGISTRY.get(kind, {}))


def load(kind: str, name: str) -> Any:
    """The class (or factory) registered for a backend kind and name."""
    try:
        target = REGISTRY[kind][name]
    except KeyError:
        known_names = ", ".join(known(kind)) or "none"
        raise ConfigError(f"unknown {kind} backend {name!r} (known: {known_names})") from None
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def model_ids(kind: str, name: str, config: Any) -> dict[str, str]:
    """The model ids the configured backend declares."""
    ids: dict[str, str] = load(kind, name).model_ids(config)
    return ids


def resources(kind: str, name: str, config: Any) -> Resources:
    """The resources the configured backend declares."""
    res: Resources = load(kind, name).resources(config)
    return res


def warm_imports(*kinds: str) -> tuple[str, ...]:
    """What the registered backends of ``kinds`` (every kind when none is named) declare in
    ``warm_imports``, in registry order, each once. Every registered backend counts, not only the
    configured one: what imports them (a launcher, a run's pool) serves one environment, and
    importing an installed but unused library costs only start-up time."""
    out: list[str] = []
    for kind in kinds or tuple(REGISTRY):
        for name in REGISTRY.get(kind, {}):
            out += [m for m in load(kind, name).warm_imports if m not in out]
    return tuple(out)


class BackendImports:
    """A stage's ``warm_imports`` made of its own and its backends' (``kinds``), resolved when
    read: stage classes are imported where backend modules should not be (DAG parsing)."""

    def __init__(self, *kinds: str, own: tuple[str, ...] = ()) -> None:
        self.kinds, self.own = kinds, own

    def __get__(self, obj: object, owner: type | None = None) -> tuple[str, ...]:
        return (*self.own, *(m for m in warm_imports(*self.kinds) if m not in self.own))
