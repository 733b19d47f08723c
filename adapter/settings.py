"""Process-wide settings, from `ADAPTER_*` environment variables (and the runner's own names).

Only the entrypoint (`adapter.main`) reads the environment; everything else is handed a
`Settings`, so tests build one directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from adapter.config import ModelEntry, RunnerSettings
from adapter.schemas import Pipeline

MIB = 1024 * 1024
DEMO_MODEL_ID = "demo/tiny-sd"


class Limits(BaseSettings):
    """Limits that bound the cost of one request; each breaks with a 400 (413 for the body)."""

    model_config = SettingsConfigDict(env_prefix="ADAPTER_")

    max_pixels_per_image: int = Field(
        1024 * 1024, gt=0, description="Largest width x height of one generated image."
    )
    max_images_per_request: int = Field(
        4, gt=0, description="Most images one request may ask for (num_images_per_prompt)."
    )
    max_inference_steps: int = Field(100, gt=0, description="Most denoising steps per request.")
    max_request_bytes: int = Field(
        50 * MIB, gt=0, description="Largest request body, uploads included (413 beyond)."
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ADAPTER_")

    models_config: Path | None = Field(
        None,
        description="Path of the aiModels.json to serve; without one, the built-in demo model.",
    )
    auth_token: str = Field(
        "",
        validation_alias=AliasChoices("ADAPTER_AUTH_TOKEN", "AUTH_TOKEN"),
        description="Bearer token accepted on every model, besides each entry's own `token`.",
    )
    model_dir: Path = Field(
        Path.home() / ".lpData" / "models",
        validation_alias=AliasChoices("ADAPTER_MODEL_DIR", "MODEL_DIR"),
        description="Hugging Face cache folder that model ids are looked up in (offline).",
    )
    demo_dir: Path = Field(
        Path.home() / ".cache" / "modal-ai-runner" / "demo",
        description="Where the built-in demo model is created on first start.",
    )
    device: str = Field("auto", pattern="^(auto|cpu|cuda(:[0-9]+)?)$")
    queue_timeout_s: float = Field(
        120.0, gt=0, description="Longest wait for a free slot before answering 503."
    )
    retry_after_s: int = Field(2, ge=0, description="Retry-After sent with a 503.")
    compile_backend: Literal["inductor", "eager"] = Field(
        "inductor",
        description="torch.compile backend for SFAST: `inductor` generates fast kernels; "
        "`eager` only captures graphs (no speed-up; to check quickly that a model traces).",
    )
    compile_mode: Literal[
        "default", "reduce-overhead", "max-autotune-no-cudagraphs", "max-autotune"
    ] = Field(
        "default",
        description="torch.compile mode (inductor's) for models with the SFAST (or "
        "TORCH_COMPILE) flag; see docs/optimization-flags.md.",
    )
    compile_cache_dir: Path | None = Field(
        None,
        description="Where compiled kernels are kept (TorchInductor's cache, Triton's beneath "
        "it); a persistent disk spares later starts the compiling. Default: "
        "TORCHINDUCTOR_CACHE_DIR, else torch's own (/tmp/torchinductor_<user>).",
    )
    limits: Limits = Field(default_factory=Limits)


def demo_entries(settings: Settings) -> list[ModelEntry]:
    """The built-in configuration: one tiny random-weight text-to-image model, built locally."""
    return [
        ModelEntry(
            pipeline=Pipeline.TEXT_TO_IMAGE,
            model_id=DEMO_MODEL_ID,
            warm=True,
            capacity=1,
            runner=RunnerSettings(
                default=True,
                demo=True,
                model_path=str(settings.demo_dir / "tiny-sd"),
                # Two steps keep a 1024x576 noise image to a few seconds on a laptop CPU.
                num_inference_steps=2,
            ),
        )
    ]
