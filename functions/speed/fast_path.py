"""The fast path: what makes a loaded diffusers pipeline faster on a GPU, output unchanged.

Stock diffusers on an H100 leaves the GPU idle most of a one-step call (measured 2026-11-22): the
CPU issuing kernels, the VAE cast to float32 and back on every call, device look-ups that walk
every submodule, float pixels converted on the CPU. `apply_fast_path` changes, in place:

1. `cuda_graphs`: the denoiser, text/image encoders and (where safe) the VAE decoder replay
   CUDA graphs of their eager kernels (`functions.speed.cuda_graphs`): no compiler, so the cold
   start grows by about a second of capture, not minutes. Same kernels, so the same output.
2. `resident_vae_dtype`: where the pipeline would upcast an fp16 VAE to float32 for every
   decode (`force_upcast`, SDXL and the x4 upscaler), keep it in float32: the same float32
   decode without casting 84 M weights twice per call. "bfloat16" decodes faster with
   float32's range (fp16 overflows with real SDXL weights) but rounds more: measure it first.
3. `pin_devices`: the pipeline's device look-ups answer at once instead of walking thousands
   of submodules per call.
4. `cudnn_benchmark`: cuDNN picks its fastest convolution per shape (once per shape).
5. Off by default, as they did not help end to end on an H100 (2026-11-22) or change
   numerics by more than rounding: `channels_last`, `fuse_qkv`, `compile_mode` (torch.compile
   of the denoiser and VAE decoder, its cache in `compile_cache_dir`).

`uint8_on_device` is read by the callers (functions.text_to_image): pixels are rounded to uint8
on the GPU, the same arithmetic as diffusers' CPU conversion, and a quarter of the bytes copied.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from contract.optimization_flags import COMPILE_MODES
from functions.speed.compile import compile_method
from functions.speed.cuda_graphs import graph_method, when_moved

logger = logging.getLogger(__name__)

# Pipelines that cast an fp16 VAE with force_upcast to float32 for each decode and back, and
# never cast it otherwise (SVD casts it for each encode and decodes in fp16: not listed).
UPCAST_DECODE_PIPELINES = frozenset({"StableDiffusionXLPipeline", "StableDiffusionUpscalePipeline"})
# Pipelines whose VAE is never cast during a call once it is resident as above: its decoder
# can be graphed (a cast would give the weights new memory and drop the graphs each call).
GRAPH_SAFE_VAE_PIPELINES = UPCAST_DECODE_PIPELINES | {"StableDiffusionPipeline"}
# Compile modes that make CUDA graphs of their own; ours are then not stacked on top.
COMPILE_MODES_WITH_GRAPHS = frozenset({"reduce-overhead", "max-autotune"})
_PIN = "_fast_path_device"
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class FastPathOptions:
    cuda_graphs: bool = True
    max_graphs_per_module: int = 4  # input shapes kept per module; each holds GPU memory
    eager_calls_before_graph: int = 1  # keeps capture out of a new process's first request
    resident_vae_dtype: str | None = "float32"  # None: diffusers' cast on every call
    pin_devices: bool = True
    uint8_on_device: bool = True
    cudnn_benchmark: bool = True
    channels_last: bool = False
    fuse_qkv: bool = False
    compile_mode: str | None = None
    compile_cache_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.resident_vae_dtype is not None and self.resident_vae_dtype not in _DTYPES:
            raise ValueError(
                f"resident_vae_dtype must be one of {', '.join(_DTYPES)} or None, "
                f"got {self.resident_vae_dtype!r}"
            )
        if self.compile_mode is not None and self.compile_mode not in COMPILE_MODES:
            raise ValueError(
                f"compile_mode must be one of {', '.join(COMPILE_MODES)} or None, "
                f"got {self.compile_mode!r}"
            )
        if self.max_graphs_per_module < 1:
            raise ValueError("max_graphs_per_module must be at least 1")


def default_fast_path(device: torch.device) -> FastPathOptions | None:
    """The fast path on CUDA; None (stock diffusers) elsewhere."""
    return FastPathOptions() if device.type == "cuda" else None


def _pipeline_name(pipe: Any) -> str:
    return type(pipe).__name__  # pinned subclasses keep their base's name


def _component(pipe: Any, name: str) -> torch.nn.Module | None:
    module = getattr(pipe, name, None)
    return module if isinstance(module, torch.nn.Module) else None


def _is_compiled(module: torch.nn.Module) -> bool:
    # torch.compile applied elsewhere (the SFAST flag): tracing our graph code would break it.
    return getattr(module, "_compiled_call_impl", None) is not None


def apply_fast_path(pipe: Any, options: FastPathOptions) -> list[str]:
    """Apply `options` to a pipeline already on its device; returns what was done, for logs."""
    done: list[str] = []
    denoiser = _component(pipe, "unet") or _component(pipe, "transformer")
    vae = _component(pipe, "vae")
    encoders = [
        module
        for name in ("text_encoder", "text_encoder_2", "text_encoder_3", "image_encoder")
        if (module := _component(pipe, name)) is not None
    ]

    # 1. Weights: dtype and layout (before any graph is captured over them).
    if options.resident_vae_dtype and vae is not None and _upcast_each_decode(pipe, vae):
        dtype = _DTYPES[options.resident_vae_dtype]
        vae.to(dtype)
        _cast_decode_input(vae, dtype)
        done.append(f"VAE resident in {options.resident_vae_dtype}")
    if options.channels_last:
        for module in (denoiser, vae):
            # Video models' 3-D convolutions have 5-D weights, which have no channels-last.
            if module is not None and all(p.dim() <= 4 for p in module.parameters()):
                # Module.to takes memory_format; torch's overloads do not say so.
                module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
                done.append(f"channels-last {type(module).__name__}")
    if options.fuse_qkv and callable(getattr(pipe, "fuse_qkv_projections", None)):
        from diffusers import AutoencoderKL

        pipe.fuse_qkv_projections(unet=True, vae=isinstance(vae, AutoencoderKL))
        done.append("fused QKV projections")

    # 2. Look-ups and library settings.
    if options.pin_devices:
        _pin_devices(pipe, [m for m in (denoiser, vae, *encoders) if m is not None])
        done.append("device look-ups pinned")
    if options.cudnn_benchmark and torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True

    # 3. Compiler, then graphs of what it made (or of the eager modules).
    compiled: list[tuple[torch.nn.Module, str]] = []
    if options.compile_mode is not None:
        compiled = _compile(denoiser, vae, options)
        done.append(f"torch.compile ({options.compile_mode})")
    if options.cuda_graphs:
        targets: list[tuple[torch.nn.Module, str]] = [(m, "forward") for m in encoders]
        if denoiser is not None:
            targets.append((denoiser, "forward"))
        if vae is not None and _vae_graph_safe(pipe, vae):
            targets.append((vae, "decode"))
        graphed = []
        for module, method in targets:
            stacked = (module, method) in compiled and options.compile_mode in (
                COMPILE_MODES_WITH_GRAPHS
            )
            if stacked or _is_compiled(module):
                continue
            graph_method(
                module, method, options.max_graphs_per_module, options.eager_calls_before_graph
            )
            graphed.append(f"{type(module).__name__}.{method}")
        if graphed:
            done.append("CUDA graphs of " + ", ".join(graphed))
    logger.info("%s fast path: %s", _pipeline_name(pipe), ", ".join(done) or "nothing applied")
    return done


def _upcast_each_decode(pipe: Any, vae: torch.nn.Module) -> bool:
    """Whether the pipeline will cast this VAE to float32 and back around each decode."""
    return (
        _pipeline_name(pipe) in UPCAST_DECODE_PIPELINES
        and next(vae.parameters()).dtype == torch.float16
        and bool(getattr(vae.config, "force_upcast", False))
    )


def _vae_graph_safe(pipe: Any, vae: torch.nn.Module) -> bool:
    return _pipeline_name(pipe) in GRAPH_SAFE_VAE_PIPELINES and not _upcast_each_decode(pipe, vae)


def _cast_decode_input(vae: torch.nn.Module, dtype: torch.dtype) -> None:
    """The pipeline hands fp16 latents to a VAE it believes is fp16: cast them to its dtype."""
    inner: Any = vae.decode

    def decode_in_vae_dtype(z: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        return inner(z.to(dtype), *args, **kwargs)

    object.__setattr__(vae, "decode", decode_in_vae_dtype)


def _compile(
    denoiser: torch.nn.Module | None, vae: torch.nn.Module | None, options: FastPathOptions
) -> list[tuple[torch.nn.Module, str]]:
    if options.compile_cache_dir is not None:
        from functions.speed.compile_cache import use_compile_cache

        use_compile_cache(options.compile_cache_dir)
    targets = [(denoiser, "forward")] if denoiser is not None else []
    if vae is not None:
        targets.append((vae, "decode"))
    for module, method in targets:
        compile_method(module, method, options.compile_mode)
    return [(module, method) for module, method in targets]


# --- device look-ups ---------------------------------------------------------------------

_PINNED_CLASSES: dict[type, type] = {}


def _pinned_class(base: type[Any]) -> type:
    """A subclass of a pipeline class whose device look-ups return the pinned device."""
    if getattr(base, "_fast_path_pinned", False):
        return base
    pinned = _PINNED_CLASSES.get(base)
    if pinned is not None:
        return pinned
    base_execution_device = base._execution_device
    base_device = base.device

    def execution_device(self: Any) -> torch.device:
        pinned = self.__dict__.get(_PIN)
        return pinned if pinned is not None else base_execution_device.fget(self)

    def device(self: Any) -> torch.device:
        pinned = self.__dict__.get(_PIN)
        return pinned if pinned is not None else base_device.fget(self)

    def to(self: Any, *args: Any, **kwargs: Any) -> Any:
        self.__dict__.pop(_PIN, None)  # moved: look the device up again
        return base.to(self, *args, **kwargs)

    pinned = type(
        base.__name__,
        (base,),
        {
            "__module__": base.__module__,
            "__qualname__": base.__qualname__,
            "__doc__": base.__doc__,
            "_fast_path_pinned": True,
            "_execution_device": property(execution_device),
            "device": property(device),
            "to": to,
        },
    )
    _PINNED_CLASSES[base] = pinned
    return pinned


def _pin_devices(pipe: Any, modules: list[torch.nn.Module]) -> None:
    device = pipe._execution_device  # what the pipeline would compute on each call
    object.__setattr__(pipe, "__class__", _pinned_class(type(pipe)))
    pipe.__dict__[_PIN] = device
    for module in modules:
        module.__dict__[_PIN] = next(iter(module.parameters())).device
        when_moved(module, functools.partial(module.__dict__.pop, _PIN, None))
    _pin_module_lookups(sys.modules[type(pipe).__module__])


def _pin_module_lookups(namespace: Any) -> None:
    """Let the pipeline module's `get_module_execution_device` answer pinned modules at once.

    It is replaced in that module only, by a function that returns the pinned device of a
    module that has one and asks the original otherwise, so other pipelines see no change.
    """
    original: Callable[[torch.nn.Module], torch.device] | None = getattr(
        namespace, "get_module_execution_device", None
    )
    if original is None or getattr(original, "_fast_path", False):
        return

    def get_module_execution_device(module: torch.nn.Module) -> torch.device:
        pinned = module.__dict__.get(_PIN)
        return pinned if pinned is not None else original(module)

    get_module_execution_device._fast_path = True  # type: ignore[attr-defined]
    namespace.get_module_execution_device = get_module_execution_device


# --- pixels ------------------------------------------------------------------------------


def images_from_tensor(images: torch.Tensor) -> list[Image.Image]:
    """Pillow images of a (batch, channels, height, width) tensor of values in [0, 1].

    The arithmetic of diffusers' own conversion (float32 x 255, round half to even, uint8),
    done where the tensor is, so only uint8 pixels cross to the CPU.
    """
    pixels = (images.float() * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    if pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    return [Image.fromarray(np.ascontiguousarray(p)) for p in pixels]
