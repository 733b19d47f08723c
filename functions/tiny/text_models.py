"""Tiny random-weight Whisper and chat LLM, built in code with no download.

Like `tiny_models` (the diffusers pipelines) they back the built-in demo and the tests: each is
saved with `save_pretrained` and served through the same `from_pretrained` path as real weights.
Their tokenizers are byte-level BPEs trained in-process on a few sentences, so they encode any
text with no unknown token.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

# Words to train the tiny BPEs on: enough merges for a vocabulary of a few hundred tokens.
_CORPUS = (
    "the quick brown fox jumps over the lazy dog. hello world, how are you today? "
    "you are a helpful assistant. the capital of france is paris. tell me a story about a "
    "lighthouse by the sea at dusk. speech recognition turns audio into text, one word at a "
    "time. large language models answer questions and write poems, code and summaries. "
    'numbers 0 1 2 3 4 5 6 7 8 9 and punctuation: commas, periods; quotes "like this"!'
)

# Whisper's special tokens, in the order (and so the relative ids) the real vocabulary has.
# Timestamp tokens follow right after <|notimestamps|>, which transformers relies on.
WHISPER_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|startoftranscript|>",
    "<|en|>",
    "<|translate|>",
    "<|transcribe|>",
    "<|startoflm|>",
    "<|startofprev|>",
    "<|nocaptions|>",
    "<|notimestamps|>",
)
WHISPER_TIMESTAMPS = 1501  # <|0.00|> ... <|30.00|> in steps of 0.02 s

LLM_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<s>{{ message['role'] }}\n{{ message['content'] }}</s>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant\n{% endif %}"
)


def train_byte_level_bpe(vocab_size: int, special_tokens: list[str]) -> Any:
    """A byte-level BPE `tokenizers.Tokenizer` trained on a small built-in corpus."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        # All 256 byte symbols, so any text encodes whatever the corpus held.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    sentences = [s.strip() for s in _CORPUS.split(".") if s.strip()]
    # Each sentence alone, and the words rearranged, so pairs repeat often enough to merge.
    words = _CORPUS.split()
    shuffled = [" ".join(words[i::7]) for i in range(7)]
    tokenizer.train_from_iterator((sentences + shuffled) * 4, trainer)
    return tokenizer


def _token_id(tokenizer: Any, token: str) -> int:
    token_id = tokenizer.convert_tokens_to_ids(token)
    assert isinstance(token_id, int), token
    return token_id


def build_tiny_whisper(path: Path, seed: int = 0) -> Path:
    """A Whisper model (transformers layout: model, tokenizer, feature extractor) at `path`.

    Its generation config is a real multilingual Whisper's, reduced to English: language
    detection, the task tokens, timestamp prediction and word-level alignment heads all work.
    """
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )

    bpe = json.loads(train_byte_level_bpe(300, []).to_str())["model"]
    tokenizer = WhisperTokenizer(
        vocab=bpe["vocab"],
        merges=[tuple(pair) for pair in bpe["merges"]],
        pad_token="<|endoftext|>",
    )
    tokenizer.add_special_tokens({"additional_special_tokens": list(WHISPER_SPECIAL_TOKENS[1:])})
    tokenizer.add_tokens([f"<|{i * 0.02:.2f}|>" for i in range(WHISPER_TIMESTAMPS)])
    ids = {token: _token_id(tokenizer, token) for token in WHISPER_SPECIAL_TOKENS}
    end, start = ids["<|endoftext|>"], ids["<|startoftranscript|>"]
    timestamp_begin = ids["<|notimestamps|>"] + 1

    config = WhisperConfig(
        vocab_size=len(tokenizer),
        num_mel_bins=80,
        d_model=32,
        encoder_layers=1,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        # 30 s of audio is 3000 mel frames, halved by the encoder's stride: fixed by Whisper.
        max_source_positions=1500,
        max_target_positions=448,
        pad_token_id=end,
        bos_token_id=end,
        eos_token_id=end,
        decoder_start_token_id=start,
        # Kept in the generation config only: transformers warns when the model config has them.
        suppress_tokens=None,
        begin_suppress_tokens=None,
    )
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config)
    with torch.no_grad():
        # Random weights favour the 1501 timestamp tokens, so the tiny model would write no
        # text at all without timestamps; damping them lets it write some, as a trained one does.
        model.model.decoder.embed_tokens.weight[timestamp_begin:] *= 0.3
    model.generation_config = GenerationConfig(
        decoder_start_token_id=start,
        bos_token_id=end,
        eos_token_id=end,
        pad_token_id=end,
        no_timestamps_token_id=ids["<|notimestamps|>"],
        prev_sot_token_id=ids["<|startofprev|>"],
        is_multilingual=True,
        lang_to_id={"<|en|>": ids["<|en|>"]},
        task_to_id={"translate": ids["<|translate|>"], "transcribe": ids["<|transcribe|>"]},
        max_initial_timestamp_index=50,
        # (layer, head) pairs whose cross-attention aligns tokens to audio frames.
        alignment_heads=[[1, 0], [1, 1]],
        begin_suppress_tokens=[end],
        suppress_tokens=[],
        return_timestamps=False,
        # Random weights rarely end a window; fewer tokens per window keep tests quick.
        max_new_tokens=32,
    )
    model.save_pretrained(path)
    WhisperProcessor(
        feature_extractor=WhisperFeatureExtractor(feature_size=80), tokenizer=tokenizer
    ).save_pretrained(path)
    return path


def build_tiny_llm(path: Path, seed: int = 0) -> Path:
    """A Llama-architecture chat model with a Jinja chat template, saved at `path`."""
    from transformers import (
        GenerationConfig,
        LlamaConfig,
        LlamaForCausalLM,
        PreTrainedTokenizerFast,
    )

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=train_byte_level_bpe(512, ["<pad>", "<s>", "</s>"]),
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        chat_template=LLM_CHAT_TEMPLATE,
    )
    pad, bos, eos = (_token_id(tokenizer, token) for token in ("<pad>", "<s>", "</s>"))
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        pad_token_id=pad,
        bos_token_id=bos,
        eos_token_id=eos,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(bos_token_id=bos, eos_token_id=eos, pad_token_id=pad)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
