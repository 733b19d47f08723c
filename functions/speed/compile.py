"""SFAST: compile a diffusers pipeline's denoiser and VAE decoder with PyTorch's own compiler.

Livepeer's runner uses stable-fast for SFAST; stable-fast is unmaintained and ships no wheel
for current torch (1.0.5 is a source package that builds CUDA extensions against torch), so
we give SFAST's intent, a faster UNet and VAE, with `torch.compile` (TorchInductor):

1. channels-last weights for the convolution-heavy UNet and VAE;
2. fused QKV projections where the pipeline offers them (SD, SDXL, instruct-pix2pix, x4
   upscaler);
3. `torch.compile` of the denoiser (UNet, or transformer) and of the VAE decoder, in place.

Compiling happens on the first call of each new input shape (about 1.5 minutes for SDXL on an
H100), so a warm-up at load (SFAST_WARMUP) keeps it off the first request. Inductor keeps
compiled kernels in a cache directory: point it at a persistent disk and later processes load
them in seconds instead of compiling again.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from contract.optimization_flags import COMPILE_MODES

logger = logging.getLogger(__name__)

# Modes of torch.compile that we let an operator choose; "default" when not chosen. On an H100
# with SDXL, "default" took 93 s and made the UNet 2.2x faster; "max-autotune-no-cudagraphs"
# did not finish compiling in 325 s; "reduce-overhead" (CUDA graphs) was the fastest, but it
# reuses its output buffers on the next call, so a scheduler that keeps a raw UNet output across
# steps (PNDM, the SD 1.5 default, does without classifier-free guidance) would read overwritten
# memory (torch raises an error then).
# "inductor" generates kernels (Triton on CUDA, C++ on the CPU): the speed-up. "eager" only
# captures the graphs (TorchDynamo) and runs them as they are: no speed-up, but it shows in
# seconds whether a model traces, where generating CPU kernels takes minutes.
COMPILE_BACKENDS = ("inductor", "eager")


def _denoiser(pipe: Any) -> torch.nn.Module:
    for name in ("unet", "transformer"):
        module = getattr(pipe, name, None)
        if isinstance(module, torch.nn.Module):
            return module
    raise ValueError(
        f"SFAST needs a UNet or transformer to compile; {type(pipe).__name__} has none"
    )


def _fuse_qkv(pipe: Any) -> bool:
    from diffusers import AutoencoderKL

    fuse = getattr(pipe, "fuse_qkv_projections", None)
    if fuse is None or getattr(pipe, "unet", None) is None:
        return False
    # diffusers fuses only AutoencoderKL's attention; other VAEs (SVD's) keep theirs.
    fuse(unet=True, vae=isinstance(getattr(pipe, "vae", None), AutoencoderKL))
    return True


def compile_method(module: torch.nn.Module, method: str, mode: str | None) -> None:
    """Replace `module.method` by its torch.compile'd self, specialised per shape (the fast
    path's way: `dynamic=False`, one graph per shape, as CUDA graphs need anyway)."""
    compiled = torch.compile(getattr(module, method), mode=mode, dynamic=False)
    object.__setattr__(module, method, compiled)


def compile_pipeline(pipe: Any, backend: str = "inductor", mode: str = "default") -> list[str]:
    """Prepare and compile `pipe` in place; returns what was done, for the log."""
    if backend not in COMPILE_BACKENDS:
        raise ValueError(
            f"compile backend must be one of {', '.join(COMPILE_BACKENDS)}, got {backend!r}"
        )
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile mode must be one of {', '.join(COMPILE_MODES)}, got {mode!r}")
    # 1. Check that there is something to compile before changing anything.
    denoiser = _denoiser(pipe)
    vae = getattr(pipe, "vae", None)
    decoder = getattr(vae, "decoder", None)

    # 2. Memory layout and fused projections (both change numerics only by rounding).
    done = []
    for module in (denoiser, vae):
        if isinstance(module, torch.nn.Module):
            # Module.to takes memory_format; torch's overloads do not say so.
            module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    done.append("channels-last")
    if _fuse_qkv(pipe):
        done.append("fused QKV")

    # 3. Compile in place: the pipeline keeps its own module objects (and their configs).
    # Modes are options of inductor only; other backends refuse them.
    options: dict[str, Any] = {"mode": mode} if backend == "inductor" else {}
    denoiser.compile(backend=backend, **options)
    how = f"{backend}, {mode}" if options else backend
    done.append(f"compiled {type(denoiser).__name__} ({how})")
    if isinstance(decoder, torch.nn.Module):
        decoder.compile(backend=backend, **options)
        done.append("compiled VAE decoder")
    return done
