"""The benchmarked models: real architectures from their published configs, random weights.

No weights can be downloaded here, and a model's speed does not depend on its weight values,
so each model is built in code from the configuration its Hugging Face repository publishes
(written out below), given random weights and saved with `save_pretrained`; both paths then
load it from disk as they would the real model. `tiny=True` gives the same pipelines with tiny
widths and depths, for the CPU check of the harness itself.

Published configurations written here:
- SDXL base / Turbo / Lightning (stabilityai/sdxl-turbo, stabilityai/stable-diffusion-xl-base-1.0):
  UNet 2.567 B parameters, VAE 83.7 M, CLIP ViT-L/14 text 123 M, OpenCLIP bigG text 695 M.
- Stable Video Diffusion img2vid-xt (stabilityai/stable-video-diffusion-img2vid-xt):
  spatio-temporal UNet 1.525 B, temporal-decoder VAE 97.7 M, CLIP ViT-H/14 vision 632 M.
- SD x4 upscaler (stabilityai/stable-diffusion-x4-upscaler): UNet, 3-block VAE, OpenCLIP ViT-H text.
The tokenizers are the byte-level CLIP tokenizer of `functions.tiny.stable_diffusion` (real BPE
vocabularies cannot be downloaded); they tokenize to the same 77 positions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from functions.tiny.stable_diffusion import (
    BOS_TOKEN_ID,
    CLIP_VOCAB_SIZE,
    EOS_TOKEN_ID,
    build_clip_tokenizer,
)

REAL_CLIP_VOCAB = 49408


def _clip_text(
    hidden: int, layers: int, heads: int, intermediate: int, act: str, projection: int, vocab: int
) -> dict[str, Any]:
    return {
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": intermediate,
        "hidden_act": act,
        "projection_dim": projection,
        "vocab_size": vocab,
        "max_position_embeddings": 77,
        # The ids of our byte-level tokenizer's special tokens (the pooled output reads EOS).
        "bos_token_id": BOS_TOKEN_ID,
        "eos_token_id": EOS_TOKEN_ID,
        "pad_token_id": EOS_TOKEN_ID,
    }


SDXL_UNET: dict[str, Any] = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": (320, 640, 1280),
    "layers_per_block": 2,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "transformer_layers_per_block": (1, 2, 10),
    "attention_head_dim": (5, 10, 20),  # diffusers' name for the head counts; heads are 64 wide
    "cross_attention_dim": 2048,
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
}
SDXL_VAE: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "block_out_channels": (128, 256, 512, 512),
    "layers_per_block": 2,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "sample_size": 512,
    "scaling_factor": 0.13025,
    "force_upcast": True,
}
SDXL_TEXT = _clip_text(768, 12, 12, 3072, "quick_gelu", 768, REAL_CLIP_VOCAB)
SDXL_TEXT_2 = _clip_text(1280, 32, 20, 5120, "gelu", 1280, REAL_CLIP_VOCAB)
# sdxl-turbo's scheduler; Lightning replaces it with Euler, trailing (functions.text_to_image).
SDXL_SCHEDULER: dict[str, Any] = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "steps_offset": 1,
    "timestep_spacing": "trailing",
    "prediction_type": "epsilon",
}

TINY_SDXL_UNET: dict[str, Any] = {
    **SDXL_UNET,
    "sample_size": 32,
    "block_out_channels": (32, 64),
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
    "transformer_layers_per_block": (1, 2),
    "attention_head_dim": (2, 4),
    "cross_attention_dim": 64,
    "addition_time_embed_dim": 8,
    "projection_class_embeddings_input_dim": 80,
}
TINY_VAE_BLOCKS: dict[str, Any] = {"block_out_channels": (32, 32, 32, 32), "layers_per_block": 1}
TINY_TEXT = _clip_text(32, 2, 4, 37, "quick_gelu", 32, CLIP_VOCAB_SIZE)

SVD_UNET: dict[str, Any] = {  # UNetSpatioTemporalConditionModel's defaults are SVD-xt's
    "sample_size": 96,
    "in_channels": 8,
    "out_channels": 4,
    "block_out_channels": (320, 640, 1280, 1280),
    "layers_per_block": 2,
    "cross_attention_dim": 1024,
    "transformer_layers_per_block": 1,
    "num_attention_heads": (5, 10, 20, 20),
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 768,
    "num_frames": 25,
}
SVD_VAE: dict[str, Any] = {  # the class defaults are NOT the published ones
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "layers_per_block": 2,
    "sample_size": 768,
    "scaling_factor": 0.18215,
    "force_upcast": True,
}
SVD_IMAGE_ENCODER: dict[str, Any] = {
    "hidden_size": 1280,
    "num_hidden_layers": 32,
    "num_attention_heads": 16,
    "intermediate_size": 5120,
    "projection_dim": 1024,
    "image_size": 224,
    "patch_size": 14,
    "hidden_act": "gelu",
}
SVD_SCHEDULER: dict[str, Any] = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "interpolation_type": "linear",
    "use_karras_sigmas": True,
    "sigma_min": 0.002,
    "sigma_max": 700.0,
    "timestep_type": "continuous",
    "timestep_spacing": "leading",
    "steps_offset": 1,
}
TINY_SVD_UNET: dict[str, Any] = {
    "sample_size": 32,
    "in_channels": 8,
    "out_channels": 4,
    "block_out_channels": (32, 64),
    "layers_per_block": 1,
    "down_block_types": ("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
    "up_block_types": ("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
    "cross_attention_dim": 32,
    "num_attention_heads": (2, 4),
    "addition_time_embed_dim": 32,
    "projection_class_embeddings_input_dim": 96,
    "num_frames": 3,
}
TINY_IMAGE_ENCODER: dict[str, Any] = {
    **SVD_IMAGE_ENCODER,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 37,
    "projection_dim": 32,
    "patch_size": 32,  # the pipeline always resizes to 224
}

UPSCALER_UNET: dict[str, Any] = {
    "sample_size": 128,
    "in_channels": 7,
    "out_channels": 4,
    "block_out_channels": (256, 512, 512, 1024),
    "layers_per_block": 2,
    "down_block_types": (
        "DownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
    ),
    "up_block_types": (
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
        "UpBlock2D",
    ),
    "only_cross_attention": (True, True, True, False),
    "attention_head_dim": 8,
    "cross_attention_dim": 1024,
    "use_linear_projection": True,
    "num_class_embeds": 1000,
}
UPSCALER_VAE: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "block_out_channels": (128, 256, 512),
    "layers_per_block": 2,
    "down_block_types": ("DownEncoderBlock2D",) * 3,
    "up_block_types": ("UpDecoderBlock2D",) * 3,
    "sample_size": 256,
    "scaling_factor": 0.08333,
}
UPSCALER_TEXT = _clip_text(1024, 23, 16, 4096, "gelu", 512, REAL_CLIP_VOCAB)
TINY_UPSCALER_UNET: dict[str, Any] = {
    **UPSCALER_UNET,
    "sample_size": 32,
    "block_out_channels": (32, 32, 64),
    "down_block_types": ("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
    "only_cross_attention": (False, False, False),
    "cross_attention_dim": 32,
}
TINY_UPSCALER_VAE: dict[str, Any] = {
    **UPSCALER_VAE,
    "block_out_channels": (32, 32, 64),
    "layers_per_block": 1,
    "mid_block_add_attention": False,
}


def _init(
    module_class: type, config: dict[str, Any], device: torch.device, dtype: torch.dtype
) -> Any:
    # Built on the target device (a 2.6 B UNet initialises in seconds on a GPU, minutes on a
    # CPU) and cast to the dtype it is saved in.
    with torch.device(device):
        module = module_class(**config)
    # `.to(device)` too: a few buffers (SVD's blend factors) are made on the CPU regardless.
    return module.to(device=device, dtype=dtype)


def _clip_text_model(
    config: dict[str, Any], with_projection: bool, device: torch.device, dtype: torch.dtype
) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    model_class = CLIPTextModelWithProjection if with_projection else CLIPTextModel
    with torch.device(device):
        model: torch.nn.Module = model_class(CLIPTextConfig(**config))
    return model.to(dtype)


def build_sdxl(folder: Path, *, tiny: bool, device: torch.device, dtype: torch.dtype) -> Any:
    """An SDXL (Turbo/Lightning) pipeline with random weights, saved at `folder`."""
    from diffusers import (
        AutoencoderKL,
        EulerAncestralDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )

    tokenizer = build_clip_tokenizer()
    text = TINY_TEXT if tiny else SDXL_TEXT
    text_2 = TINY_TEXT if tiny else SDXL_TEXT_2
    # diffusers' top-level names read as its dummy placeholders to a type checker: Any.
    pipe: Any = StableDiffusionXLPipeline(
        unet=_init(UNet2DConditionModel, TINY_SDXL_UNET if tiny else SDXL_UNET, device, dtype),
        vae=_init(AutoencoderKL, {**SDXL_VAE, **(TINY_VAE_BLOCKS if tiny else {})}, device, dtype),
        text_encoder=_clip_text_model(text, False, device, dtype),
        text_encoder_2=_clip_text_model(text_2, True, device, dtype),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        scheduler=EulerAncestralDiscreteScheduler(**SDXL_SCHEDULER),
    )
    pipe.save_pretrained(folder)
    return pipe


def build_svd(folder: Path, *, tiny: bool, device: torch.device, dtype: torch.dtype) -> Any:
    """A Stable Video Diffusion img2vid-xt pipeline with random weights, saved at `folder`."""
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        StableVideoDiffusionPipeline,
        UNetSpatioTemporalConditionModel,
    )
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    with torch.device(device):
        image_encoder: torch.nn.Module = CLIPVisionModelWithProjection(
            CLIPVisionConfig(**(TINY_IMAGE_ENCODER if tiny else SVD_IMAGE_ENCODER))
        )
    pipe: Any = StableVideoDiffusionPipeline(
        vae=_init(
            AutoencoderKLTemporalDecoder,
            {**SVD_VAE, **(TINY_VAE_BLOCKS if tiny else {})},
            device,
            dtype,
        ),
        image_encoder=image_encoder.to(dtype),
        unet=_init(
            UNetSpatioTemporalConditionModel, TINY_SVD_UNET if tiny else SVD_UNET, device, dtype
        ),
        scheduler=EulerDiscreteScheduler(**SVD_SCHEDULER),
        feature_extractor=CLIPImageProcessor(
            crop_size=224,
            size={"shortest_edge": 224},
            image_mean=[0.48145466, 0.4578275, 0.40821073],
            image_std=[0.26862954, 0.26130258, 0.27577711],
        ),
    )
    pipe.save_pretrained(folder)
    return pipe


def build_x4_upscaler(folder: Path, *, tiny: bool, device: torch.device, dtype: torch.dtype) -> Any:
    """A Stable Diffusion x4 upscaler pipeline with random weights, saved at `folder`."""
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        DDPMScheduler,
        StableDiffusionUpscalePipeline,
        UNet2DConditionModel,
    )

    pipe: Any = StableDiffusionUpscalePipeline(
        vae=_init(AutoencoderKL, TINY_UPSCALER_VAE if tiny else UPSCALER_VAE, device, dtype),
        text_encoder=_clip_text_model(TINY_TEXT if tiny else UPSCALER_TEXT, False, device, dtype),
        tokenizer=build_clip_tokenizer(),
        unet=_init(
            UNet2DConditionModel, TINY_UPSCALER_UNET if tiny else UPSCALER_UNET, device, dtype
        ),
        low_res_scheduler=DDPMScheduler(
            num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear"
        ),
        scheduler=DDIMScheduler(
            num_train_timesteps=1000,
            beta_start=0.0001,
            beta_end=0.02,
            beta_schedule="scaled_linear",
            prediction_type="v_prediction",
            clip_sample=False,
            set_alpha_to_one=False,
            steps_offset=1,
        ),
        max_noise_level=350,
    )
    pipe.save_pretrained(folder)
    return pipe


@dataclass(frozen=True)
class Architecture:
    name: str
    build: Callable[..., Any]
    model_id: str  # the published model whose architecture this is


ARCHITECTURES: dict[str, Architecture] = {
    "sdxl": Architecture("sdxl", build_sdxl, "stabilityai/sdxl-turbo"),
    "svd-xt": Architecture("svd-xt", build_svd, "stabilityai/stable-video-diffusion-img2vid-xt"),
    "x4-upscaler": Architecture(
        "x4-upscaler", build_x4_upscaler, "stabilityai/stable-diffusion-x4-upscaler"
    ),
}


def ensure_model(
    root: Path, name: str, *, tiny: bool, device: torch.device, dtype: torch.dtype
) -> Path:
    """The folder of architecture `name` under `root`, built (random weights) if absent."""
    folder = root / (f"tiny-{name}" if tiny else name)
    if (folder / "model_index.json").is_file():
        return folder
    staging = folder.with_name(folder.name + ".partial")
    if staging.exists():
        import shutil

        shutil.rmtree(staging)
    pipe = ARCHITECTURES[name].build(staging, tiny=tiny, device=device, dtype=dtype)
    del pipe
    staging.rename(folder)  # a half-written model is never taken for a whole one
    return folder


def parameter_count(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())
