"""Fill the weights Volume with the models of an aiModels.json, before deploying:

    modal run modal_download.py                    # every model of ADAPTER_MODELS_CONFIG
    modal run modal_download.py --model-id org/name

A separate app from modal_app.py, so a download never starts the GPU classes or their warm
pools. Files go to the Volume in the Hugging Face cache layout the GPU classes load from;
progress is printed per model and per file.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import modal

from adapter.settings import Settings
from modal_deploy.plan import MODELS_MOUNT, download_targets, plan_classes
from modal_deploy.runtime import build_image
from modal_deploy.settings import ModalDeploySettings, read_deploy_models

DEPLOY = ModalDeploySettings()
app = modal.App(f"{Settings().modal_app}-download")
volume = modal.Volume.from_name(DEPLOY.volume, create_if_missing=True)
hf_secrets = [modal.Secret.from_name(DEPLOY.hf_secret)] if DEPLOY.hf_secret else []


@app.function(
    image=build_image(), volumes={MODELS_MOUNT: volume}, secrets=hf_secrets, timeout=6 * 3600
)
def download(repo_id: str, prefer_fp16: bool) -> str:
    from pathlib import Path

    from functions.download import download_model

    folder = download_model(
        repo_id, Path(MODELS_MOUNT), prefer_fp16=prefer_fp16, token=os.environ.get("HF_TOKEN")
    )
    volume.commit()
    return str(folder)


@app.local_entrypoint()
def main(model_id: str = "") -> None:
    models, _ = read_deploy_models(os.environ)
    targets = download_targets(plan_classes(models, datetime.now(UTC)))
    if model_id:
        targets = [target for target in targets if target.repo_id == model_id]
        if not targets:
            raise SystemExit(f"{model_id} is not a model of the aiModels.json being deployed")
    for number, target in enumerate(targets, 1):
        variant = "fp16 variant" if target.prefer_fp16 else "full precision"
        print(f"[{number}/{len(targets)}] {target.repo_id} ({variant})", flush=True)
        print(f"    -> {download.remote(target.repo_id, target.prefer_fp16)}", flush=True)
    print(f"Volume {DEPLOY.volume} holds {len(targets)} model(s); now: modal deploy modal_app.py")
