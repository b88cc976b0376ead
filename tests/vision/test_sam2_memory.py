"""SAM 2 driven frame by frame with per-object memory banks, against sam2's own video predictor.

One object seeded with a box and propagated gives exactly the masks ``SAM2VideoPredictor`` gives
(same model, same frames): the memory selection, temporal encodings and object pointers are
SAM 2's. A second object joining later, batched with the first, leaves the first object's masks
unchanged: new objects do not disturb live memories. Tiny random SAM 2.1 (image size 256).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.support.tiny_sam2 import TINY_CONFIG, write_tiny_sam2

SIZE = 256
BOX_A = (40.0, 50.0, 140.0, 160.0)
BOX_B = (150.0, 20.0, 240.0, 120.0)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    from PIL import Image

    from glave_tasks.compat.torchvision_ops import ensure_torchvision_ops

    ensure_torchvision_ops()
    from sam2.build_sam import build_sam2_video_predictor

    root = tmp_path_factory.mktemp("sam2_memory")
    checkpoint = write_tiny_sam2(root / "sam2.pt", image_size=SIZE)
    predictor = build_sam2_video_predictor(TINY_CONFIG, ckpt_path=str(checkpoint), device="cpu",
                                           hydra_overrides_extra=[f"++model.image_size={SIZE}"])
    # Square frames at the model size: the predictor's PIL resize and ours are both the identity.
    rng = np.random.default_rng(1)
    base = rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
    folder = root / "frames"
    folder.mkdir()
    frames = []
    for i in range(5):
        Image.fromarray(np.roll(base, 5 * i, axis=1)).save(folder / f"{i}.jpg", quality=95)
        frames.append(np.array(Image.open(folder / f"{i}.jpg").convert("RGB")))
    return predictor, folder, frames


def _reference(predictor, folder: Path, box: tuple[float, ...]) -> dict[int, np.ndarray]:
    import torch

    with torch.inference_mode():
        state = predictor.init_state(video_path=str(folder))
        predictor.add_new_points_or_box(state, frame_idx=0, obj_id=1, box=np.asarray(box, np.float32))
        return {f: (logits[0, 0] > 0).numpy() for f, _, logits in predictor.propagate_in_video(state)}


@pytest.mark.slow
def test_one_object_matches_sam2s_video_predictor(setup) -> None:
    import torch

    from glave_tasks.vision.sam2_memory import ObjectMemory, Sam2Memory

    predictor, folder, frames = setup
    reference = _reference(predictor, folder, BOX_A)
    memory = Sam2Memory(predictor)
    with torch.inference_mode():
        feats = memory.encode(frames)
        seeded, fallback = memory.seed(0, feats[0], [BOX_A], SIZE, SIZE, len(frames))
        bank = ObjectMemory()
        bank.add_cond(0, seeded.entries[0], keep=2)
        masks = {0: seeded.masks[0]}
        for f in range(1, len(frames)):
            step = memory.propagate(f, feats[f], [bank], SIZE, SIZE, len(frames))
            bank.add_recent(f, step.entries[0])
            bank.prune(f + 1, memory.maskmem_window, memory.ptr_window)
            masks[f] = step.masks[0]
    assert fallback == [False]
    assert memory.encoder_calls == 1 and memory.encoded_frames == len(frames)
    for f in range(len(frames)):
        assert reference[f].any()
        np.testing.assert_array_equal(masks[f], reference[f], err_msg=f"frame {f}")


@pytest.mark.slow
def test_an_object_joining_later_leaves_live_memories_untouched(setup) -> None:
    """A seeded on frame 0, B on frame 2; from frame 3 on both are propagated in the same step
    (their memories differ in length, so in separate groups of the same call). A's masks are
    those of A tracked alone, B's those of B tracked alone from frame 2."""
    import torch

    from glave_tasks.vision.sam2_memory import ObjectMemory, Sam2Memory

    predictor, folder, frames = setup
    reference_a = _reference(predictor, folder, BOX_A)
    memory = Sam2Memory(predictor)

    def run(objects: dict[str, tuple[int, tuple[float, ...]]]) -> dict[str, dict[int, np.ndarray]]:
        banks: dict[str, ObjectMemory] = {}
        masks: dict[str, dict[int, np.ndarray]] = {name: {} for name in objects}
        with torch.inference_mode():
            feats = memory.encode(frames)
            for f in range(len(frames)):
                live = sorted(banks)
                if live:
                    step = memory.propagate(f, feats[f], [banks[n] for n in live], SIZE, SIZE, len(frames))
                    for name, mask, entry in zip(live, step.masks, step.entries):
                        banks[name].add_recent(f, entry)
                        masks[name][f] = mask
                new = [n for n, (start, _) in objects.items() if start == f]
                if new:
                    seeded, _ = memory.seed(f, feats[f], [objects[n][1] for n in new], SIZE, SIZE, len(frames))
                    for name, mask, entry in zip(new, seeded.masks, seeded.entries):
                        banks[name] = ObjectMemory()
                        banks[name].add_cond(f, entry, keep=2)
                        masks[name][f] = mask
        return masks

    together = run({"a": (0, BOX_A), "b": (2, BOX_B)})
    b_alone = run({"b": (2, BOX_B)})
    for f in range(len(frames)):
        np.testing.assert_array_equal(together["a"][f], reference_a[f], err_msg=f"A, frame {f}")
    for f in range(2, len(frames)):
        agreement = (together["b"][f] == b_alone["b"][f]).mean()
        assert agreement > 0.999, (f, agreement)  # batched vs alone: float summation order only
    # Seeded on the same frame, A and B share every call (one batch of two).
    same_start = run({"a": (0, BOX_A), "b": (0, BOX_B)})
    for f in range(len(frames)):
        agreement = (same_start["a"][f] == reference_a[f]).mean()
        assert agreement > 0.999, (f, agreement)
