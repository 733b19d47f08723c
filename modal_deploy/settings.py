"""What a deploy starts from: its own settings (`ADAPTER_MODAL_*`: names of the Modal objects,
the web function) and the models it deploys.

The entrypoints (modal_app.py, modal_download.py) read the environment and hand it here (the
settings schema, the mapping `read_deploy_models` takes); nothing under modal_deploy/ reads
the environment itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from contract.aimodels import ServedModel, load_models_file, merge_entries, parse_entries
from contract.errors import ConfigError
from modal_deploy.weights import parse_revisions

# Containers rebuild the plan from these variables, so they define the same classes as the
# deploy: the entries the function serves, and the pinned revision of each repo it loads.
MODELS_JSON_ENV = "RUNNER_MODELS_JSON"
REVISIONS_ENV = "RUNNER_MODEL_REVISIONS"
# Fields of an entry that make a GPU class; the others (url, prices, token) are go-livepeer's.
CLASS_FIELDS = ("pipeline", "model_id", "warm", "capacity", "optimization_flags", "runner")
SAMPLE_MODELS_FILE = Path(__file__).resolve().parent.parent / "examples" / "aiModels.modal.json"


# The web container's reservation, sized by bench/modal_web.py (2026-12-01, 2-CPU AMD EPYC
# build machine; docs/modal.md): a 1024x1024 PNG uploaded and answered costs the adapter
# 0.039 CPU-seconds and ~4 MiB while in flight (JSON in, PNG out: 0.005 s, ~2 MiB), over
# ~165 MiB idle. A quarter core then serves ~6 such requests a second (more when Modal has
# spare CPU: the request is a floor, not a limit), what a few GPU containers finishing a job
# each 0.5 s send back; 1 GiB holds 100 requests in flight with room to spare.
WEB_CPU_DEFAULT = 0.25
WEB_MEMORY_MB_DEFAULT = 1024
# segment-anything-2 answers at 1024x1024 with logits: ~64 MiB of text each, held while in
# flight and copied to encode (bench/modal_web.py --kinds segment-anything-2, 2026-12-01, same
# machine: 0.41-0.51 CPU-seconds a request; peak RSS 478 / 702 / 945 MiB with 1 / 4 / 8 in
# flight over 275-291 MiB after warm-up). The web container then needs about
# WEB_IDLE_MB + SAM2_FIRST_MB + SAM2_MORE_MB per further one in flight.
WEB_IDLE_MB = 165
SAM2_FIRST_MB = 200
SAM2_MORE_MB = 75


def sam2_web_memory_mb(in_flight: int) -> int:
    """The web container's memory (MiB) for `in_flight` SAM 2 answers at 1024x1024 with
    logits at once (0: none), per the figures above."""
    if in_flight <= 0:
        return WEB_IDLE_MB
    return WEB_IDLE_MB + SAM2_FIRST_MB + SAM2_MORE_MB * (in_flight - 1)


class ModalDeploySettings(BaseSettings):
    """Deploy-time names and web settings (env `ADAPTER_MODAL_*`), read by modal_app.py."""

    model_config = SettingsConfigDict(env_prefix="ADAPTER_MODAL_")

    volume: str = Field("livepeer-models", description="Volume holding the weights (HF cache).")
    auth_secret: str = Field(
        "livepeer-runner-auth",
        description="Secret with AUTH_TOKEN, the bearer token the deployed adapter accepts.",
    )
    hf_secret: str = Field(
        "", description="Secret with HF_TOKEN for gated models; used only by the download."
    )
    compile_volume: str = Field(
        "livepeer-compile-cache",
        description="Volume holding compiled kernels (TorchInductor/Triton caches), committed "
        "by each GPU container after its warm-up.",
    )
    web_label: str = Field(
        "",
        description="Label of the web URL (https://<workspace>--<label>.modal.run); "
        "default: the app name.",
    )
    web_max_inputs: int = Field(
        100, gt=0, description="Requests one adapter container serves at once (all async)."
    )
    # Sized by bench/modal_web.py (docs/modal.md, "The web function's CPU and memory").
    web_cpu: float = Field(
        WEB_CPU_DEFAULT,
        ge=0.125,
        le=64,
        description="CPU cores reserved for the adapter's web container (Modal's minimum 0.125).",
    )
    web_memory_mb: int = Field(
        WEB_MEMORY_MB_DEFAULT,
        ge=128,
        le=262144,
        description="Memory (MiB) reserved for the adapter's web container.",
    )
    web: bool = Field(
        True,
        description="Serve the adapter on Modal (topology 1). False when the adapter runs beside "
        "the orchestrator and only the GPU classes are deployed (topology 2).",
    )


def deployed_models_json(raw_entries: list[Any]) -> str:
    """The entries as the containers get them: without `token` (the adapter on Modal takes its
    token from the auth Secret), compact and stable."""
    entries = [
        {k: v for k, v in entry.items() if k != "token"} if isinstance(entry, dict) else entry
        for entry in raw_entries
    ]
    return json.dumps(entries, separators=(",", ":"), sort_keys=True)


def class_entries(models_json: str) -> dict[str, str]:
    """Each model's own entries, by model key (`pipeline/model_id`), as its GPU class gets
    them: only the fields that make the class (`CLASS_FIELDS`), compact and stable. A model
    given in several entries (one per price or gateway) keeps them all: their capacities add
    up. The same text gives the same result in a container given only those entries."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for entry in json.loads(models_json):
        if isinstance(entry, dict):
            key = f"{entry.get('pipeline')}/{entry.get('model_id')}"
            kept = {k: entry[k] for k in CLASS_FIELDS if k in entry}
            grouped.setdefault(key, []).append(kept)
    return {
        key: json.dumps(entries, separators=(",", ":"), sort_keys=True)
        for key, entries in grouped.items()
    }


def download_env(deploy: ModalDeploySettings, app_name: str) -> dict[str, str]:
    """The download function's environment: the names modal_download.py reads, set
    explicitly, so its container (where the operator's shell variables never arrive) defines
    the same function with the same dependencies, the HF Secret among them, as `modal run`."""
    return {
        "ADAPTER_MODAL_APP": app_name,
        "ADAPTER_MODAL_VOLUME": deploy.volume,
        "ADAPTER_MODAL_HF_SECRET": deploy.hf_secret,
    }


def models_from_json(text: str, source: str) -> list[ServedModel]:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source}: not valid JSON: {exc}") from exc
    return merge_entries(parse_entries(raw, source), source)


def load_deploy_models(path: Path) -> tuple[list[ServedModel], str]:
    """The served models of an aiModels.json file, and the JSON the containers rebuild them from."""
    models = load_models_file(path)  # validates, with messages naming entry and field
    raw = json.loads(path.read_text(encoding="utf-8"))
    return models, deployed_models_json(raw)


def read_deploy_models(environ: Mapping[str, str]) -> tuple[list[ServedModel], str]:
    """The models modal_app.py deploys: inside a container, those the deploy passed on in
    RUNNER_MODELS_JSON; on the deploying machine, the aiModels.json at ADAPTER_MODELS_CONFIG,
    else the committed sample."""
    if MODELS_JSON_ENV in environ:
        text = environ[MODELS_JSON_ENV]
        return models_from_json(text, MODELS_JSON_ENV), text
    return load_deploy_models(Path(environ.get("ADAPTER_MODELS_CONFIG") or SAMPLE_MODELS_FILE))


def read_deploy_revisions(
    environ: Mapping[str, str], read_manifest: Callable[[], str | None]
) -> dict[str, str]:
    """The pinned revisions (repo -> commit sha): inside a container, those the deploy passed
    on in RUNNER_MODEL_REVISIONS; on the deploying machine, the weights Volume's manifest
    (`read_manifest`, None when there is none yet)."""
    if REVISIONS_ENV in environ:
        return parse_revisions(environ[REVISIONS_ENV], REVISIONS_ENV)
    text = read_manifest()
    return {} if text is None else parse_revisions(text, "the weights Volume's .revisions.json")
