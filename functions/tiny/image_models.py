"""Tiny random-weight models of the image pipelines beyond text-to-image, built in code.

Like `functions.tiny.stable_diffusion` (whose text encoder, tokenizer, VAE and scheduler they
share), they back the built-in demo and the tests and load through the same `from_pretrained`
path as real weights. Image-to-image needs no builder of its own for SD 1.5/SDXL: diffusers'
`AutoPipelineForImage2Image` loads the text-to-image folders of `build_tiny_sd`/`build_tiny_sdxl`.

Attention sits only at the lowest resolution of each UNet, so the demo stays quick at the
contract's default sizes (576x1024 video) on a laptop CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from functions.tiny.stable_diffusion import (
    _clip_text_config,
    _scheduler,
    _vae,
    build_clip_tokenizer,
)


def build_tiny_instruct_pix2pix(path: Path, seed: int = 0) -> Path:
    """An InstructPix2Pix pipeline (SD 1.5 family, UNet taking 8 channels), saved at `path`."""
    from diffusers import (
        EulerAncestralDiscreteScheduler,
        StableDiffusionInstructPix2PixPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=32,
        # Noisy latents and the encoded input image, concatenated.
        in_channels=8,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
    )
    # diffusers' top-level names read as its dummy placeholders to a type checker: Any.
    pipe: Any = StableDiffusionInstructPix2PixPipeline(
        unet=unet,
        vae=_vae(),
        text_encoder=CLIPTextModel(_clip_text_config()),
        tokenizer=build_clip_tokenizer(),
        scheduler=EulerAncestralDiscreteScheduler.from_config(_scheduler().config),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(path)
    return path


def build_tiny_svd(path: Path, num_frames: int = 3, seed: int = 0) -> Path:
    """A Stable Video Diffusion pipeline making `num_frames` frames by default, saved at `path`."""
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        StableVideoDiffusionPipeline,
        UNetSpatioTemporalConditionModel,
    )
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    unet = UNetSpatioTemporalConditionModel(
        block_out_channels=(32, 32, 64),
        layers_per_block=1,
        sample_size=32,
        in_channels=8,
        out_channels=4,
        down_block_types=(
            "DownBlockSpatioTemporal",
            "DownBlockSpatioTemporal",
            "CrossAttnDownBlockSpatioTemporal",
        ),
        up_block_types=(
            "CrossAttnUpBlockSpatioTemporal",
            "UpBlockSpatioTemporal",
            "UpBlockSpatioTemporal",
        ),
        cross_attention_dim=32,
        num_attention_heads=(2, 2, 4),
        # Three added time ids (fps, motion bucket, noise strength) of 32 each.
        addition_time_embed_dim=32,
        projection_class_embeddings_input_dim=96,
        num_frames=num_frames,
    )
    vae = AutoencoderKLTemporalDecoder(
        block_out_channels=(32, 32, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=1,
    )
    # The pipeline always resizes the conditioning image to 224 for its encoder.
    image_encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            image_size=224,
            patch_size=32,
            projection_dim=32,
        )
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type="v_prediction",
        use_karras_sigmas=True,
        steps_offset=1,
    )
    pipe: Any = StableVideoDiffusionPipeline(
        vae=vae,
        image_encoder=image_encoder,
        unet=unet,
        scheduler=scheduler,
        feature_extractor=CLIPImageProcessor(crop_size=224, size={"shortest_edge": 224}),
    )
    pipe.save_pretrained(path)
    return path


def build_tiny_sd_upscaler(path: Path, seed: int = 0) -> Path:
    """A Stable Diffusion x4 upscaler pipeline with tiny random weights, saved at `path`."""
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        DDPMScheduler,
        StableDiffusionUpscalePipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextModel

    torch.manual_seed(seed)
    # Latents are at the input's full resolution here, so attention waits for the 8x smaller
    # fourth level (a 512x512 input makes 4096 tokens there, not 262144).
    unet = UNet2DConditionModel(
        block_out_channels=(32, 32, 32, 64),
        layers_per_block=1,
        sample_size=32,
        # Noisy latents and the low-resolution image, concatenated.
        in_channels=7,
        out_channels=4,
        down_block_types=("DownBlock2D",) * 3 + ("CrossAttnDownBlock2D",),
        up_block_types=("CrossAttnUpBlock2D",) + ("UpBlock2D",) * 3,
        cross_attention_dim=32,
        attention_head_dim=8,
        # The noise level added to the low-resolution image is a class label.
        num_class_embeds=1000,
    )
    # Three blocks: the VAE decodes at 4x the latents, which are at the input's resolution.
    # No attention in its middle block: at the output size it would be quadratic in pixels.
    vae = AutoencoderKL(
        block_out_channels=(32, 32, 64),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        latent_channels=4,
        layers_per_block=1,
        scaling_factor=0.08333,
        mid_block_add_attention=False,
    )
    pipe: Any = StableDiffusionUpscalePipeline(
        vae=vae,
        text_encoder=CLIPTextModel(_clip_text_config()),
        tokenizer=build_clip_tokenizer(),
        unet=unet,
        low_res_scheduler=DDPMScheduler(num_train_timesteps=1000),
        scheduler=DDIMScheduler(
            num_train_timesteps=1000,
            prediction_type="v_prediction",
            beta_schedule="scaled_linear",
            beta_start=0.0001,
            beta_end=0.02,
            steps_offset=1,
        ),
        max_noise_level=350,
    )
    pipe.save_pretrained(path)
    return path
