"""Where a model's weights are on local disk; nothing is ever downloaded at request time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


class ModelNotFoundError(FileNotFoundError):
    """The weights of a model are not on local disk."""


def resolve_model_path(model_id: str, model_path: str | None, cache_dir: Path) -> Path:
    """The folder holding a model's files, checked on disk without loading anything (cheap:
    callers use it at start to find missing weights at once).

    An explicit `model_path` wins; otherwise `model_id` is looked up in the Hugging Face cache
    layout under `cache_dir` (`models--org--name/snapshots/<rev>/`), offline. Raises
    ModelNotFoundError naming the model and the path when the folder is missing or empty.
    """
    if model_path is not None:
        folder = Path(model_path).expanduser()
        if not folder.is_dir():
            raise ModelNotFoundError(f"model folder {folder} does not exist")
        if not any(folder.iterdir()):
            raise ModelNotFoundError(f"model folder {folder} is empty")
        return folder
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    hint = (
        f"download it there first (hf download {model_id} --cache-dir {cache_dir}) or set "
        "runner.model_path in its aiModels.json entry"
    )
    try:
        folder = Path(snapshot_download(model_id, cache_dir=str(cache_dir), local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError) as exc:
        raise ModelNotFoundError(
            f"model {model_id!r} is not in the Hugging Face cache at {cache_dir}; {hint}"
        ) from exc
    if not folder.is_dir() or not any(folder.iterdir()):
        raise ModelNotFoundError(
            f"model {model_id!r} has an empty snapshot {folder} in the Hugging Face cache; {hint}"
        )
    return folder


def has_fp16_variant(folder: Path) -> bool:
    """Whether the folder ships `*.fp16.safetensors` files (the runner prefers them)."""
    return any(folder.rglob("*.fp16.safetensors"))


def model_index(folder: Path) -> dict[str, Any]:
    """The `model_index.json` of a diffusers pipeline folder."""
    index = folder / "model_index.json"
    if not index.is_file():
        raise FileNotFoundError(f"{folder} has no model_index.json: not a diffusers pipeline")
    return json.loads(index.read_text(encoding="utf-8"))


def diffusers_load_kwargs(folder: Path, dtype: torch.dtype) -> dict[str, Any]:
    """`from_pretrained` arguments for a diffusers pipeline folder, as the runner loads it."""
    import torch

    kwargs: dict[str, Any] = {"dtype": dtype}
    if dtype == torch.float16 and has_fp16_variant(folder):
        kwargs["variant"] = "fp16"
    index = model_index(folder)
    if "safety_checker" in index:
        # A bundled checker would run inside every call and blank flagged images; ours only
        # flags them, and runs only when asked.
        kwargs["safety_checker"] = None
    if "requires_safety_checker" in index:
        kwargs["requires_safety_checker"] = False
    return kwargs


def load_pipeline_of_class(
    pipeline_class: Any, folder: Path, dtype: torch.dtype, device: torch.device, task: str
) -> Any:
    """`pipeline_class.from_pretrained(folder)` on `device`, refusing a folder that holds
    another kind of pipeline with a message naming both."""
    class_name = model_index(folder).get("_class_name")
    if class_name != pipeline_class.__name__:
        raise ValueError(
            f"{folder} holds a {class_name}; {task} serves {pipeline_class.__name__} models"
        )
    pipe = pipeline_class.from_pretrained(folder, **diffusers_load_kwargs(folder, dtype))
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)
