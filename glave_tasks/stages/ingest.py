"""Ingest (GLaVE-Cap step 1): probe every video, reject what cannot be used with a reason code,
and in one streaming decode pass per video write the dense frame samples the tracker reads, the
keyframes (similarity to the last keyframe below a threshold) and the shot cuts mapped onto them.

Outputs per shard: ``probes``, ``keyframes``, ``dense_frames``, ``cuts`` and JPEG frames under
``files/<video_id>/``. Keyframe images are the dense samples they coincide with (same key).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from .. import backends
from ..contract import Resources, ShardContext, Stage, VideoRef

if TYPE_CHECKING:
    from ..parallel import VideoContext


class IngestStage(Stage):
    name: ClassVar[str] = "ingest"
    family: ClassVar[str] = "cpu"
    needs: ClassVar[tuple[str, ...]] = ()
    outputs: ClassVar[tuple[str, ...]] = ("probes", "keyframes", "dense_frames", "cuts")
    config_sections: ClassVar[tuple[str, ...]] = ("run", "ingest")
    timeout_min: ClassVar[int] = 60
    work_in_pool: ClassVar[bool] = True
    # The decode pass and its cut detector, plus what the similarity backends import.
    warm_imports = backends.BackendImports("similarity", own=("av", "cv2", "scenedetect", "glave_tasks.media.scan"))

    _backend: Any = None

    def resources(self) -> Resources:
        ing = self.config.ingest
        return Resources(cpu="2", memory="4Gi", gpus=0, ephemeral_storage="20Gi").union(
            backends.resources("similarity", ing.similarity_backend, ing))

    def model_ids(self) -> dict[str, str]:
        ing = self.config.ingest
        return backends.model_ids("similarity", ing.similarity_backend, ing)

    def setup(self) -> None:
        if self._backend is None:
            cls = backends.load("similarity", self.config.ingest.similarity_backend)
            self._backend = cls.from_config(self.config)

    def process(self, ctx: ShardContext) -> None:
        from ..parallel import map_videos

        probes: list[dict[str, Any]] = []
        keyframes: list[dict[str, Any]] = []
        dense: list[dict[str, Any]] = []
        cuts: list[dict[str, Any]] = []
        # Videos decode in parallel over the stage's CPUs; rows come back in the shard's order.
        for rows in map_videos(ctx, self, "_video", [(v.video_id, (v,)) for v in ctx.videos]):
            if rows is None:
                continue
            probes += rows["probes"]
            keyframes += rows["keyframes"]
            dense += rows["dense"]
            cuts += rows["cuts"]
        ctx.write("probes", probes)
        ctx.write("keyframes", keyframes)
        ctx.write("dense_frames", dense)
        ctx.write("cuts", cuts)

    def _video(self, ctx: ShardContext | VideoContext, video: VideoRef) -> dict[str, list[dict[str, Any]]]:
        """One video's decode pass: its rows of each table (its frames are written as it goes)."""
        from ..address_space import exhaustion_fails_the_stage

        # Memory running out (a decoder or writer thread that cannot start, a codec library that
        # cannot be mapped) stops the shard as an infrastructure failure; it is not this video's.
        with exhaustion_fails_the_stage(f"ingest of {video.file_name}"):
            return self._scan_video(ctx, video)

    def _scan_video(self, ctx: ShardContext | VideoContext, video: VideoRef) -> dict[str, list[dict[str, Any]]]:
        from ..media.inputs import local_input
        from ..media.scan import scan_video
        from ..parallel import VideoContext, cpu_workers

        vid = video.video_id
        # Decoder threads pay only where cores would idle otherwise: one video decoded inline on
        # a stage with several CPUs. A pool worker shares the cores with one worker per core, and
        # a one-CPU stage has no other core; there threads only add their own overhead.
        threads = not isinstance(ctx, VideoContext) and cpu_workers(self.resources()) > 1
        # Inputs count in the metrics by how their hash was confirmed: reused from discover
        # (local file unchanged), recomputed (local file changed or not recorded), or in download.
        with local_input(video, self.config, ctx.add_metric) as path, _VideoProgress(ctx, video) as progress:
            result = scan_video(path, self.config.ingest, self._backend,
                                lambda data, i: ctx.put_bytes(data, vid, f"f{i:06d}.jpg"), on_progress=progress,
                                decode_threads=threads)
        p = result.probe
        shown_w, shown_h = p.display_size
        if result.truncated_at_s is not None:
            ctx.add_metric("videos_truncated", 1)
        ctx.add_metric("video_seconds", result.duration_s)
        ctx.add_metric("frames_decoded", result.frames_decoded)
        ctx.add_metric("scan_s", result.timings["scan_s"])
        return {
            "probes": [{
                "video_id": vid, "duration_s": result.duration_s, "fps": p.fps, "width": shown_w,
                "height": shown_h, "codec": p.codec, "has_audio": p.has_audio,
                "frames_decoded": result.frames_decoded, "first_content_s": result.first_content_s,
                "truncated_at_s": result.truncated_at_s, "source_duration_s": p.duration_s,
                "rotation": p.rotation,
            }],
            "keyframes": [{
                "video_id": vid, "keyframe_index": k.keyframe_index, "frame_index": k.frame_index,
                "timestamp_s": k.timestamp_s, "similarity": k.similarity,
                "shot_index": result.shot_of_keyframe[k.keyframe_index], "image_key": k.image_key,
                "width": k.width, "height": k.height,
            } for k in result.keyframes],
            "dense": [{
                "video_id": vid, "sample_index": d.sample_index, "frame_index": d.frame_index,
                "timestamp_s": d.timestamp_s, "keyframe_index": d.keyframe_index, "image_key": d.image_key,
            } for d in result.dense],
            "cuts": [{
                "video_id": vid, "cut_index": c.cut_index, "frame_index": c.frame_index,
                "timestamp_s": round(c.frame_index / p.fps, 6) if p.fps else 0.0,
                "keyframe_index": c.keyframe_index,
            } for c in result.cuts],
        }


class _VideoProgress:
    """A progress bar in seconds of video for the video being decoded (long videos take a while)."""

    def __init__(self, ctx: ShardContext | VideoContext, video: VideoRef) -> None:
        self._bar: Any = None
        if ctx.show_progress:
            from tqdm import tqdm

            self._bar = tqdm(desc=f"{ctx.stage}[{ctx.shard}] {video.file_name[:40]}", unit="video-s",
                             leave=False, bar_format="{desc}: {n:.0f} video-s [{elapsed}, {rate_fmt}]")

    def __enter__(self) -> _VideoProgress | None:
        return self if self._bar is not None else None

    def __call__(self, seconds: float) -> None:
        self._bar.update(max(0.0, seconds - self._bar.n))

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()
