"""Tiny random-weight BLIP captioner and VITS speech model, built in code with no download.

Like the other tiny models they back the built-in demo and the tests: each is saved with
`save_pretrained` and served through the same `from_pretrained` path as real weights. Their
tokenizers are built from in-memory vocabularies: a WordPiece one of single characters (and a
few words) for BLIP, so any Latin text encodes; VITS's of characters, as MMS-TTS's is.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

# BLIP's text side is a BERT: its special tokens, then `[DEC]`, the decoder's start token.
_BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_CAPTION_WORDS = (
    "a an the of on in with and is photo picture photography painting cat dog man woman "
    "sitting standing red blue green sea sky lighthouse house tree"
).split()
_SYMBOLS = tuple(chr(c) for c in range(ord("a"), ord("z") + 1)) + tuple("0123456789.,!?'-")

# The MMS-TTS alphabet (facebook/mms-tts-eng): a pad, space, two marks, letters and digits.
_VITS_SYMBOLS = ("<pad>", " ", "'", "-", *_SYMBOLS[:36])

# Height and width of the tiny captioner's input (real BLIP: 384); its patches are 8 pixels.
BLIP_IMAGE_SIDE = 32


def build_tiny_blip(path: Path, seed: int = 0) -> Path:
    """A BLIP captioning model (model, BERT tokenizer, image processor) saved at `path`."""
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessorPil,
        BlipProcessor,
    )

    tokens = (*_BERT_SPECIALS, *_CAPTION_WORDS, *_SYMBOLS, *(f"##{s}" for s in _SYMBOLS))
    tokenizer = BertTokenizer(vocab={t: i for i, t in enumerate(dict.fromkeys(tokens))})
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    bos = tokenizer.convert_tokens_to_ids("[DEC]")
    config = BlipConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 16,
            "encoder_hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "max_position_embeddings": 64,
            "bos_token_id": bos,
            "sep_token_id": tokenizer.sep_token_id,
            "eos_token_id": tokenizer.sep_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": BLIP_IMAGE_SIDE,
            "patch_size": 8,
        },
        projection_dim=16,
    )
    torch.manual_seed(seed)
    model = BlipForConditionalGeneration(config)
    model.save_pretrained(path)
    image_processor = BlipImageProcessorPil(
        size={"height": BLIP_IMAGE_SIDE, "width": BLIP_IMAGE_SIDE}
    )
    BlipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(path)
    return path


def build_tiny_vits(path: Path, seed: int = 0, sampling_rate: int = 16_000) -> Path:
    """A VITS text-to-speech model (MMS-TTS layout: model and character tokenizer) at `path`.

    Its vocoder upsamples 16 times instead of 256, so its random-weight speech is short.
    """
    from transformers import VitsConfig, VitsModel, VitsTokenizer

    with tempfile.TemporaryDirectory() as scratch:
        vocab = Path(scratch) / "vocab.json"
        vocab.write_text(json.dumps({s: i for i, s in enumerate(_VITS_SYMBOLS)}), "utf-8")
        tokenizer = VitsTokenizer(
            str(vocab), pad_token="<pad>", unk_token="<unk>", phonemize=False, add_blank=True
        )
        tokenizer.save_pretrained(path)
    config = VitsConfig(
        vocab_size=len(_VITS_SYMBOLS),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        ffn_dim=32,
        flow_size=16,
        spectrogram_bins=17,
        upsample_initial_channel=16,
        upsample_rates=(4, 4),
        upsample_kernel_sizes=(8, 8),
        resblock_kernel_sizes=(3,),
        resblock_dilation_sizes=((1,),),
        duration_predictor_filter_channels=16,
        duration_predictor_num_flows=1,
        prior_encoder_num_flows=1,
        prior_encoder_num_wavenet_layers=1,
        posterior_encoder_num_wavenet_layers=1,
        depth_separable_num_layers=1,
        sampling_rate=sampling_rate,
        pad_token_id=0,
    )
    torch.manual_seed(seed)
    VitsModel(config).save_pretrained(path)
    return path
