"""Fill the weights Volume with the models of an aiModels.json, before deploying:

    modal run modal_download.py                    # every model of ADAPTER_MODELS_CONFIG
    modal run modal_download.py --model-id org/name

A separate app from modal_app.py, so a download never starts the GPU classes or their warm
pools. Files go to the Volume in the Hugging Face cache layout the GPU classes load from;
progress is printed per model and per file. Each repo's resolved commit is recorded in the
Volume's manifest (`.revisions.json`), which `modal deploy` pins each class to: redeploy after
a download for the classes to serve the new weights.

The function's dependencies (Secrets, image, Volume) must be the same here and in its
container, where Modal matches them by position: the names this file reads from the
environment (the HF Secret's above all) are set in the function's own environment
(`download_env`), so the container, which never sees the operator's shell, reads the same.
"""

from __future__ import annotations

import os

import modal

from adapter.settings import Settings
from modal_deploy.plan import MODELS_MOUNT
from modal_deploy.runtime import build_image
from modal_deploy.settings import ModalDeploySettings, download_env, read_deploy_models
from modal_deploy.weights import download_targets

DEPLOY = ModalDeploySettings()
APP_NAME = f"{Settings().modal_app}-download"
ENV: dict[str, str | None] = {**download_env(DEPLOY, Settings().modal_app)}
app = modal.App(APP_NAME)
volume = modal.Volume.from_name(DEPLOY.volume, create_if_missing=True)
hf_secrets = [modal.Secret.from_name(DEPLOY.hf_secret)] if DEPLOY.hf_secret else []


@app.function(
    image=build_image(),
    volumes={MODELS_MOUNT: volume},
    secrets=hf_secrets,
    env=ENV,
    timeout=6 * 3600,
)
def download(repo_id: str, prefer_fp16: bool) -> str:
    from pathlib import Path

    from functions.download import download_model, record_revision

    folder = download_model(
        repo_id, Path(MODELS_MOUNT), prefer_fp16=prefer_fp16, token=os.environ.get("HF_TOKEN")
    )
    volume.commit()
    volume.reload()  # the manifest as other downloads left it, before adding this one
    sha = record_revision(Path(MODELS_MOUNT), repo_id, folder)
    volume.commit()
    return f"{folder} (revision {sha} recorded)"


@app.local_entrypoint()
def main(model_id: str = "") -> None:
    models, _ = read_deploy_models(os.environ)
    targets = download_targets(models)
    if model_id:
        targets = [target for target in targets if target.repo_id == model_id]
        if not targets:
            raise SystemExit(f"{model_id} is not a model of the aiModels.json being deployed")
    for number, target in enumerate(targets, 1):
        variant = "fp16 variant" if target.prefer_fp16 else "full precision"
        print(f"[{number}/{len(targets)}] {target.repo_id} ({variant})", flush=True)
        print(f"    -> {download.remote(target.repo_id, target.prefer_fp16)}", flush=True)
    print(f"Volume {DEPLOY.volume} holds {len(targets)} model(s); now: modal deploy modal_app.py")
