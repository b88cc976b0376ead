"""Build a tiny random-initialised Qwen2-VL-style model offline, for engine tests.

The weights are random (text is gibberish); what the tests check is the engine path: image
prompts, batching, JSON-schema constrained output, provenance. A BPE tokenizer is trained with
``tokenizers`` on a small corpus and carries a Qwen-style chat template, so vLLM's own chat
handling (image placeholders included) runs unchanged. Runs in ``.venv-llm`` (transformers).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SPECIAL = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|image_pad|>", "<|video_pad|>",
]

# Qwen2-VL's template, trimmed: images become <|vision_start|><|image_pad|><|vision_end|>.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or part['type'] == 'image_url' or 'image' in part %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

CORPUS = [
    '{"scenes": [{"start": 0, "end": 3, "scene_hint": "a street", "camera_note": "static"}]}',
    "The person (ID=1) walks to the left while the car (ID=2) stays parked. [0 - 2]",
    "A red circle moves right across a blue background; the camera is static.",
    "0123456789 {}[]:,.\"' - = ( ) true false null",
] * 20


def build_tiny_qwen2_vl(out_dir: str | Path, vocab_size: int = 384) -> Path:
    from glave_tasks.compat.torchvision_ops import ensure_torchvision_ops

    ensure_torchvision_ops()  # CPU torch beside the CUDA-linked torchvision wheel
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        PreTrainedTokenizerFast,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - len(SPECIAL), special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   unk_token=None, model_max_length=4096)
    fast.chat_template = CHAT_TEMPLATE
    ids = {t: tok.token_to_id(t) for t in SPECIAL}
    vocab = max(tok.get_vocab_size(), vocab_size)

    # head_dim 64: vLLM's CPU attention kernels support only some head sizes (16 is rejected).
    config = Qwen2VLConfig(
        text_config={
            "vocab_size": vocab, "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
            "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 4096,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [8, 12, 12]},
            "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={"depth": 1, "embed_dim": 32, "hidden_size": 128, "num_heads": 2, "mlp_ratio": 2,
                       "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2},
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], tie_word_embeddings=False,
    )
    config.architectures = ["Qwen2VLForConditionalGeneration"]
    torch.manual_seed(0)
    model = Qwen2VLForConditionalGeneration(config).to(torch.bfloat16)
    model.save_pretrained(out)
    # Small images keep the vision token count (and CPU time) low: at most 8x8 patches of 14 px.
    image_processor = Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=112 * 112)
    try:
        processor = Qwen2VLProcessor(image_processor=image_processor, tokenizer=fast, chat_template=CHAT_TEMPLATE)
    except TypeError:
        from transformers import Qwen2VLVideoProcessor

        processor = Qwen2VLProcessor(image_processor=image_processor, tokenizer=fast,
                                     video_processor=Qwen2VLVideoProcessor(), chat_template=CHAT_TEMPLATE)
    processor.save_pretrained(out)
    fast.save_pretrained(out)
    (out / "generation_config.json").write_text(json.dumps({"eos_token_id": ids["<|im_end|>"],
                                                            "pad_token_id": ids["<|endoftext|>"]}))
    return out


if __name__ == "__main__":
    print(build_tiny_qwen2_vl(sys.argv[1]))
