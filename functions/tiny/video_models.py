"""A tiny random-weight Wan 2.1 text-to-video pipeline, built in code with no download.

The real classes of `Wan-AI/Wan2.1-T2V-1.3B-Diffusers` at a few thousand parameters each: the
UMT5 text encoder, the Wan transformer, the Wan 3D VAE (4x fewer frames and 8x fewer pixels a
side in its latents, as the real one) and the UniPC flow-matching scheduler the real folder
ships. Saved with `save_pretrained`, loaded by `WanPipeline.from_pretrained` as real weights
are. It draws noise; it backs the built-in demo and the tests.

The tokenizer is a byte-level BPE trained in-process (`text_models.train_byte_level_bpe`) that
ends each text with `</s>`, as UMT5's SentencePiece tokenizer does, and pads with `<pad>` (0).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from functions.tiny.text_models import train_byte_level_bpe

TEXT_DIM = 32
VOCAB_SIZE = 384
# The prompt length the pipeline pads to by default (its `max_sequence_length`): 512 tokens.
MAX_TOKENS = 512
# The 480p flow shift of Wan 2.1's own scheduler config.
FLOW_SHIFT = 3.0


def build_tiny_wan_tokenizer() -> Any:
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    bpe = train_byte_level_bpe(VOCAB_SIZE, ["<pad>", "</s>", "<unk>"])
    bpe.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", bpe.token_to_id("</s>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=MAX_TOKENS,
    )


def build_tiny_wan(path: Path, seed: int = 0) -> Path:
    """A WanPipeline folder at `path` (diffusers layout: model_index.json and one folder per
    component)."""
    from diffusers import (
        AutoencoderKLWan,
        UniPCMultistepScheduler,
        WanPipeline,
        WanTransformer3DModel,
    )
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(seed)
    tokenizer = build_tiny_wan_tokenizer()
    text_encoder = UMT5EncoderModel(
        UMT5Config(
            vocab_size=VOCAB_SIZE,
            d_model=TEXT_DIM,
            d_kv=8,
            d_ff=37,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            pad_token_id=0,
            eos_token_id=1,
            decoder_start_token_id=0,
        )
    )
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=16,
        out_channels=16,
        text_dim=TEXT_DIM,
        freq_dim=32,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=1024,  # the real one: latents up to 1024 tokens a side
    )
    # Three spatial downsamplings (8x) and two temporal ones (4x), as the real VAE; 16 latent
    # channels, whose per-channel mean and std (its config) default to the real model's.
    vae = AutoencoderKLWan(
        base_dim=3,
        z_dim=16,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
    )
    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction",
        use_flow_sigmas=True,
        flow_shift=FLOW_SHIFT,
        num_train_timesteps=1000,
    )
    pipe: Any = WanPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae,
        scheduler=scheduler,
        transformer=transformer,
    )
    pipe.save_pretrained(path)
    return path
