"""The weights a deploy serves: which Hugging Face repos the Volume must hold, and the revision
of each that the GPU classes are pinned to.

`modal run modal_download.py` fetches each repo's current revision and records the commit it
resolved in the Volume's manifest (`functions.download.REVISIONS_FILE`); `modal deploy` reads
the manifest and puts each class's revisions in its definition. A class then loads exactly
that commit's snapshot folder, and new weights (a new commit downloaded) change the class's
definition on the next deploy, so Modal builds a new memory snapshot instead of restoring one
holding the old weights. Plain data: nothing here imports Modal.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import PurePosixPath

from contract.aimodels import ServedModel
from contract.errors import ConfigError

MODELS_MOUNT = "/models"
SHA = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class DownloadTarget:
    repo_id: str
    prefer_fp16: bool


def model_repos(model: ServedModel) -> list[str]:
    """The Hugging Face repos a served model loads by id: its own (unless it brings its files
    with `model_path`, or is the demo) and its safety checker's given by id."""
    runner = model.runner
    repos = []
    if runner.model_path is None and not runner.demo:
        repos.append(model.model_id)
    checker = runner.safety_checker
    if checker and not checker.startswith("/"):
        repos.append(checker)
    return repos


def download_targets(models: Iterable[ServedModel]) -> list[DownloadTarget]:
    """The repos the Volume must hold: each model and each safety checker given by id."""
    wanted: dict[str, bool] = {}
    for model in models:
        runner = model.runner
        for repo in model_repos(model):
            if repo == model.model_id:
                # On a GPU, 'auto' runs in float16, where the fp16 variant is what gets loaded.
                fp16 = runner.torch_dtype in ("auto", "float16")
                wanted[repo] = wanted.get(repo, True) and fp16
            else:
                wanted[repo] = False  # the checker always runs in float32
    return [DownloadTarget(repo, fp16) for repo, fp16 in wanted.items()]


def parse_revisions(text: str, source: str) -> dict[str, str]:
    """A revisions manifest: a JSON object of repo id -> commit sha (40 hex digits)."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source}: not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a JSON object of repo id -> commit sha")
    for repo, sha in raw.items():
        if not (isinstance(sha, str) and len(sha) == 40 and set(sha) <= SHA):
            raise ConfigError(f"{source}: {repo}: {sha!r} is not a commit sha")
    return {str(repo): str(sha) for repo, sha in raw.items()}


def revisions_json(revisions: Mapping[str, str]) -> str:
    return json.dumps(dict(revisions), separators=(",", ":"), sort_keys=True)


def repo_revisions(model: ServedModel, revisions: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The pinned (repo, sha) of each repo `model` loads that the manifest names."""
    return tuple((repo, revisions[repo]) for repo in model_repos(model) if repo in revisions)


def snapshot_folder(repo_id: str, sha: str, cache_dir: str = MODELS_MOUNT) -> str:
    """Where a repo's commit lies in the Hugging Face cache layout (huggingface_hub's rule:
    `models--<org>--<name>/snapshots/<sha>`)."""
    folder = "models--" + repo_id.replace("/", "--")
    return str(PurePosixPath(cache_dir) / folder / "snapshots" / sha)


def pinned_model(model: ServedModel, pins: tuple[tuple[str, str], ...]) -> ServedModel:
    """`model` loading its pinned commits: the weights folder and the safety checker named by
    their snapshot folders, so a later download (a new commit, `refs/main` moved) changes
    nothing for a class until it is deployed again."""
    if not pins:
        return model
    folders = {repo: snapshot_folder(repo, sha) for repo, sha in pins}
    runner = model.runner
    update: dict[str, str] = {}
    if model.model_id in folders and runner.model_path is None:
        update["model_path"] = folders[model.model_id]
    if runner.safety_checker in folders:
        update["safety_checker"] = folders[runner.safety_checker]
    return replace(model, runner=runner.model_copy(update=update))


def unpinned_repos(models: Iterable[ServedModel], revisions: Mapping[str, str]) -> list[str]:
    """Repos the deploy loads that the manifest does not name (not downloaded yet)."""
    return [t.repo_id for t in download_targets(models) if t.repo_id not in revisions]
