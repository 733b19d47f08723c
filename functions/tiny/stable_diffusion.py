"""Tiny random-weight models of the real architectures, built in code with no download.

They back the built-in demo (which draws noise) and the tests: each is saved with
`save_pretrained` and served through the same `from_pretrained` path as real weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from transformers import CLIPTextConfig, CLIPTokenizer

# A byte-level CLIP vocabulary: the 256 byte symbols of GPT-2's byte-to-unicode map, the same
# with the end-of-word marker, then the two special tokens. It tokenizes any text offline.
BOS_TOKEN_ID = 512
EOS_TOKEN_ID = 513
CLIP_VOCAB_SIZE = 514


def _byte_symbols() -> list[str]:
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return [chr(code) for code in codes]


def build_clip_tokenizer() -> CLIPTokenizer:
    from transformers import CLIPTokenizer

    symbols = _byte_symbols()
    vocab = {symbol: i for i, symbol in enumerate(symbols)}
    vocab.update({symbol + "</w>": 256 + i for i, symbol in enumerate(symbols)})
    vocab["<|startoftext|>"] = BOS_TOKEN_ID
    vocab["<|endoftext|>"] = EOS_TOKEN_ID
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def _clip_text_config(projection_dim: int = 32) -> CLIPTextConfig:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        hidden_size=32,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=CLIP_VOCAB_SIZE,
        bos_token_id=BOS_TOKEN_ID,
        eos_token_id=EOS_TOKEN_ID,
        pad_token_id=EOS_TOKEN_ID,
        projection_dim=projection_dim,
        max_position_embeddings=77,
    )


def _vae() -> Any:
    from diffusers import AutoencoderKL

    # Four blocks give the real 8x latent downscale, so latents (and attention) stay as small
    # as a real model's at the same image size.
    return AutoencoderKL(
        block_out_channels=(32, 32, 32, 32),
        layers_per_block=1,
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        sample_size=32,
    )


def _scheduler() -> Any:
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1
    )


def build_tiny_sd(path: Path, seed: int = 0) -> Path:
    """A Stable Diffusion 1.5 family pipeline with tiny random weights, saved at `path`."""
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
    )
    # diffusers' top-level names read as its dummy placeholders to a type checker: Any.
    pipe: Any = StableDiffusionPipeline(
        unet=unet,
        vae=_vae(),
        text_encoder=CLIPTextModel(_clip_text_config()),
        tokenizer=build_clip_tokenizer(),
        scheduler=_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(path)
    return path


def build_tiny_sdxl(path: Path, seed: int = 0) -> Path:
    """A Stable Diffusion XL family pipeline with tiny random weights, saved at `path`."""
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=80,
        cross_attention_dim=64,
    )
    tokenizer = build_clip_tokenizer()
    pipe: Any = StableDiffusionXLPipeline(
        unet=unet,
        vae=_vae(),
        text_encoder=CLIPTextModel(_clip_text_config()),
        text_encoder_2=CLIPTextModelWithProjection(_clip_text_config()),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        scheduler=_scheduler(),
    )
    pipe.save_pretrained(path)
    return path


def build_tiny_safety_checker(path: Path, threshold: float = 0.0, seed: int = 0) -> Path:
    """A StableDiffusionSafetyChecker with tiny random weights and its image processor.

    `threshold` replaces every concept threshold: a very low one flags every image, a very
    high one flags none, which lets tests see that the flag comes from the checker.
    """
    from diffusers.pipelines.stable_diffusion.safety_checker import (
        StableDiffusionSafetyChecker,
    )
    from transformers import CLIPConfig, CLIPImageProcessor

    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config={
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_attention_heads": 4,
            "num_hidden_layers": 2,
            "vocab_size": CLIP_VOCAB_SIZE,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_attention_heads": 4,
            "num_hidden_layers": 2,
            "image_size": 32,
            "patch_size": 4,
        },
        projection_dim=32,
    )
    checker = StableDiffusionSafetyChecker(config)
    with torch.no_grad():
        checker.concept_embeds_weights.fill_(threshold)
        checker.special_care_embeds_weights.fill_(threshold)
    checker.save_pretrained(path)
    CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(path)
    return path
