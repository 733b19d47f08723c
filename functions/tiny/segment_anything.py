"""A tiny random-weight SAM 2 (transformers' `Sam2Model`), built in code with no download.

It backs the built-in demo and the tests, saved with `save_pretrained` beside the processor
configs a SAM 2 checkpoint on the Hub carries, and served through the same `from_pretrained`
path as real weights. Its square input is 64x64 (real SAM 2: 1024), so its low-resolution masks
and `mask_input` are 16x16 (real: 256x256); a forward pass takes milliseconds on a CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

TINY_INPUT_SIZE = 64


def build_tiny_sam2(path: Path, seed: int = 0) -> Path:
    """A SAM 2 image model with a four-stage Hiera backbone of one or two blocks, saved at
    `path` with its `preprocessor_config.json` and `processor_config.json`."""
    from transformers import (
        Sam2Config,
        Sam2HieraDetConfig,
        Sam2MaskDecoderConfig,
        Sam2Model,
        Sam2PromptEncoderConfig,
        Sam2VisionConfig,
    )

    side = TINY_INPUT_SIZE
    torch.manual_seed(seed)
    backbone = Sam2HieraDetConfig(
        hidden_size=8,
        num_attention_heads=1,
        image_size=[side, side],
        blocks_per_stage=[1, 1, 2, 1],
        embed_dim_per_stage=[8, 16, 32, 64],
        num_attention_heads_per_stage=[1, 1, 1, 1],
        # A stage's first block pools its queries by 2 within the previous stage's window.
        window_size_per_stage=[4, 4, 2, 2],
        global_attention_blocks=[3],
        window_positional_embedding_background_size=[2, 2],
    )
    vision = Sam2VisionConfig(
        backbone_config=backbone,
        backbone_channel_list=[64, 32, 16, 8],
        backbone_feature_sizes=[[side // 4] * 2, [side // 8] * 2, [side // 16] * 2],
        fpn_hidden_size=32,
    )
    config = Sam2Config(
        vision_config=vision,
        prompt_encoder_config=Sam2PromptEncoderConfig(
            hidden_size=32, image_size=side, patch_size=16, mask_input_channels=8
        ),
        mask_decoder_config=Sam2MaskDecoderConfig(
            hidden_size=32,
            mlp_dim=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            iou_head_hidden_dim=16,
        ),
    )
    Sam2Model(config).eval().save_pretrained(path)
    # What Sam2Processor.save_pretrained writes (it needs torchvision to be built).
    preprocessor = {
        "image_processor_type": "Sam2ImageProcessorFast",
        "processor_class": "Sam2Processor",
        "do_resize": True,
        "size": {"height": side, "width": side},
        "mask_size": {"height": side // 4, "width": side // 4},
        "resample": 2,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [0.485, 0.456, 0.406],
        "image_std": [0.229, 0.224, 0.225],
        "do_convert_rgb": True,
    }
    processor = {"processor_class": "Sam2Processor", "target_size": side, "point_pad_value": -10}
    for name, content in (
        ("preprocessor_config.json", preprocessor),
        ("processor_config.json", processor),
    ):
        (path / name).write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
    return path
