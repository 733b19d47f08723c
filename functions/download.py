"""Fetching a model's weights into a Hugging Face cache folder, once, before serving.

Used by modal_download.py's `download` (into the Modal Volume); serving never downloads.
Only the files a pipeline loads are fetched: model repos often carry the same weights several
times (fp32 and fp16, .bin and .safetensors, single-file checkpoints, ONNX), tens of GB unused.
Each download records the commit it resolved in the folder's revisions manifest
(`REVISIONS_FILE`), which the deploy pins each Modal class to.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path, PurePosixPath

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf")
# Formats no pipeline here loads, and repo decoration (sample images, docs).
SKIPPED_SUFFIXES = (
    ".onnx",
    ".onnx_data",
    ".msgpack",
    ".h5",
    ".tflite",
    ".ot",
    ".mlmodel",
    ".pb",
    ".png",
    ".jpg",
    ".jpeg",
    ".gif",
    ".webp",
    ".mp4",
    ".md",
    ".pdf",
    ".gitattributes",
)
SKIPPED_FOLDERS = frozenset({"onnx", "flax", "openvino", "coreml", "tensorrt", ".git"})
FP16_SUFFIX = ".fp16.safetensors"
# At the cache folder's root: {repo id: the commit sha its last download resolved}.
REVISIONS_FILE = ".revisions.json"


def _folder(name: str) -> str:
    return str(PurePosixPath(name).parent) if "/" in name else ""


def select_files(files: list[str], prefer_fp16: bool) -> list[str]:
    """The repo files a diffusers/transformers pipeline loads, from a repo's file list.

    - safetensors where the repo has them (then .bin/.pt are duplicates);
    - in a folder with both, the fp16 variant when the model runs in float16, else the full one;
    - in a diffusers repo (model_index.json at the root), no root-level single-file checkpoints.
    """
    has_safetensors = any(f.endswith(".safetensors") for f in files)
    diffusers = "model_index.json" in files
    fp16_folders = {_folder(f) for f in files if f.endswith(FP16_SUFFIX)}
    plain_folders = {
        _folder(f) for f in files if f.endswith(".safetensors") and not f.endswith(FP16_SUFFIX)
    }
    chosen = []
    for name in sorted(files):
        folder = _folder(name)
        if name.endswith(SKIPPED_SUFFIXES) or SKIPPED_FOLDERS & set(PurePosixPath(name).parts):
            continue
        if name.endswith(WEIGHT_SUFFIXES):
            if diffusers and folder == "":
                continue
            if has_safetensors and not name.endswith(".safetensors"):
                continue
            is_fp16 = name.endswith(FP16_SUFFIX)
            if is_fp16 and not prefer_fp16 and folder in plain_folders:
                continue
            if not is_fp16 and prefer_fp16 and folder in fp16_folders:
                continue
        chosen.append(name)
    return chosen


def download_model(
    repo_id: str, cache_dir: Path, *, prefer_fp16: bool, token: str | None = None
) -> Path:
    """Download the files `select_files` picks into `cache_dir` (HF cache layout), printing
    what is fetched and progress bars; returns the snapshot folder."""
    from huggingface_hub import HfApi, snapshot_download

    info = HfApi(token=token).model_info(repo_id, files_metadata=True)
    sizes = {s.rfilename: s.size or 0 for s in info.siblings or []}
    chosen = select_files(list(sizes), prefer_fp16)
    total_gb = sum(sizes[name] for name in chosen) / 1e9
    skipped_gb = (sum(sizes.values()) / 1e9) - total_gb
    print(
        f"{repo_id}@{(info.sha or '')[:10]}: {len(chosen)} of {len(sizes)} files, "
        f"{total_gb:.2f} GB (skipping {skipped_gb:.2f} GB not loaded)",
        flush=True,
    )
    started = time.monotonic()
    # The default revision, so the cache records refs/main, which offline lookups resolve.
    folder = snapshot_download(
        repo_id,
        cache_dir=str(cache_dir),
        allow_patterns=chosen,
        token=token,
    )
    print(f"{repo_id}: done in {time.monotonic() - started:.0f} s -> {folder}", flush=True)
    return Path(folder)


def read_revisions(cache_dir: Path) -> dict[str, str]:
    """The revisions manifest of `cache_dir` ({} when there is none yet)."""
    path = cache_dir / REVISIONS_FILE
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return {str(repo): str(sha) for repo, sha in data.items()}


def record_revision(cache_dir: Path, repo_id: str, folder: Path) -> str:
    """Record in the manifest the commit `folder` (a `snapshots/<sha>` folder of `repo_id`)
    holds, replacing the file at once (written aside, then renamed); returns the sha."""
    sha = folder.name
    if len(sha) != 40 or not set(sha) <= set("0123456789abcdef"):
        raise ValueError(f"{folder} is not a snapshot folder named by its commit sha")
    revisions = read_revisions(cache_dir) | {repo_id: sha}
    staging = cache_dir / f"{REVISIONS_FILE}.{os.getpid()}"
    staging.write_text(json.dumps(revisions, indent=1, sort_keys=True), encoding="utf-8")
    staging.replace(cache_dir / REVISIONS_FILE)
    return sha
