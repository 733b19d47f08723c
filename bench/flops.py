"""Matrix FLOPs of each case, counted on the meta device (no memory, no compute).

`torch.utils.flop_counter.FlopCounterMode` counts the matrix work (matrix products,
convolutions, attention) of each model call from its shapes; elementwise work is not counted.
A case's floor is its FLOPs over the device's measured matrix rate: no implementation on that
device runs faster, and the gap to it says how much is left. Counting is done once per model
call of the case and multiplied by how often the pipeline makes that call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from bench import architectures as arch

META = torch.device("meta")
HALF = torch.float16
TOKENS = 77


def _count(call: Callable[[], object]) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        call()
    return int(counter.get_total_flops())


def _empty(*shape: int, dtype: torch.dtype = HALF) -> torch.Tensor:
    return torch.empty(*shape, device=META, dtype=dtype)


def _tokens(batch: int = 1) -> torch.Tensor:
    return torch.zeros(batch, TOKENS, dtype=torch.long, device=META)


def sdxl_text_to_image(
    *, tiny: bool, height: int, width: int, steps: int, guidance: bool
) -> dict[str, int]:
    """FLOPs of one SDXL image: both text encoders, `steps` UNet calls, one VAE decode."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    unet_config = arch.TINY_SDXL_UNET if tiny else arch.SDXL_UNET
    text = arch.TINY_TEXT if tiny else arch.SDXL_TEXT
    text_2 = arch.TINY_TEXT if tiny else arch.SDXL_TEXT_2
    batch = 2 if guidance else 1
    encoders = _count(
        lambda: arch._clip_text_model(text, False, META, HALF)(_tokens(), output_hidden_states=True)
    ) + _count(
        lambda: arch._clip_text_model(text_2, True, META, HALF)(
            _tokens(), output_hidden_states=True
        )
    )
    unet = arch._init(UNet2DConditionModel, unet_config, META, HALF)
    pooled = (
        unet_config["projection_class_embeddings_input_dim"]
        - 6 * unet_config["addition_time_embed_dim"]
    )
    unet_call = _count(
        lambda: unet(
            _empty(batch, 4, height // 8, width // 8),
            torch.tensor(999.0, device=META),
            encoder_hidden_states=_empty(batch, TOKENS, unet_config["cross_attention_dim"]),
            added_cond_kwargs={"text_embeds": _empty(batch, pooled), "time_ids": _empty(batch, 6)},
        )
    )
    vae_config = {**arch.SDXL_VAE, **(arch.TINY_VAE_BLOCKS if tiny else {})}
    vae = arch._init(AutoencoderKL, vae_config, META, torch.float32)
    decode = _count(lambda: vae.decode(_empty(1, 4, height // 8, width // 8, dtype=torch.float32)))
    return {
        "text_encoders": encoders * (2 if guidance else 1),
        "unet": unet_call * steps,
        "vae_decode": decode,
    }


def svd_image_to_video(
    *, tiny: bool, height: int, width: int, frames: int, steps: int, decode_chunk: int
) -> dict[str, int]:
    """FLOPs of one SVD video: image encoder, VAE encode, `steps` UNet calls (classifier-free
    guidance doubles the batch), the VAE decode of every frame in chunks."""
    from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    with META:
        image_encoder: torch.nn.Module = CLIPVisionModelWithProjection(
            CLIPVisionConfig(**(arch.TINY_IMAGE_ENCODER if tiny else arch.SVD_IMAGE_ENCODER))
        )
        image_encoder.to(HALF)
    encode_image = _count(lambda: image_encoder(_empty(1, 3, 224, 224)))
    vae_config = {**arch.SVD_VAE, **(arch.TINY_VAE_BLOCKS if tiny else {})}
    vae = arch._init(AutoencoderKLTemporalDecoder, vae_config, META, HALF)
    encode_latents = _count(lambda: vae.encode(_empty(1, 3, height, width)))
    decode = 0
    for start in range(0, frames, decode_chunk):
        chunk = min(decode_chunk, frames - start)

        def decode_chunk_of(chunk: int = chunk) -> object:
            return vae.decode(_empty(chunk, 4, height // 8, width // 8), num_frames=chunk)

        decode += _count(decode_chunk_of)
    unet_config = arch.TINY_SVD_UNET if tiny else arch.SVD_UNET
    unet = arch._init(UNetSpatioTemporalConditionModel, unet_config, META, HALF)
    unet_call = _count(
        lambda: unet(
            _empty(2, frames, 8, height // 8, width // 8),
            torch.tensor(1.0, device=META),
            encoder_hidden_states=_empty(2, 1, unet_config["cross_attention_dim"]),
            added_time_ids=_empty(2, 3),
        )
    )
    return {
        "image_encoder": encode_image,
        "vae_encode": encode_latents,
        "unet": unet_call * steps,
        "vae_decode": decode,
    }


def x4_upscale(*, tiny: bool, height: int, width: int, steps: int) -> dict[str, int]:
    """FLOPs of one x4 upscale of a height x width input (classifier-free guidance on)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    text = arch.TINY_TEXT if tiny else arch.UPSCALER_TEXT
    encoder = _count(lambda: arch._clip_text_model(text, False, META, HALF)(_tokens()))
    unet_config = arch.TINY_UPSCALER_UNET if tiny else arch.UPSCALER_UNET
    unet = arch._init(UNet2DConditionModel, unet_config, META, HALF)
    unet_call = _count(
        lambda: unet(
            _empty(2, 7, height, width),
            torch.tensor(20.0, device=META),
            encoder_hidden_states=_empty(2, TOKENS, unet_config["cross_attention_dim"]),
            class_labels=torch.zeros(2, dtype=torch.long, device=META),
        )
    )
    vae = arch._init(
        AutoencoderKL, arch.TINY_UPSCALER_VAE if tiny else arch.UPSCALER_VAE, META, torch.float32
    )
    decode = _count(lambda: vae.decode(_empty(1, 4, height, width, dtype=torch.float32)))
    return {"text_encoder": encoder * 2, "unet": unet_call * steps, "vae_decode": decode}


def floor(flops: dict[str, int], rate: dict[str, Any]) -> dict[str, Any]:
    total = sum(flops.values())
    return {
        "flops": flops,
        "total_flops": total,
        "floor_s": total / float(rate["flop_per_s"]),
    }
