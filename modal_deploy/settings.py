"""What a deploy starts from: its own settings (`ADAPTER_MODAL_*`: names of the Modal objects,
the web function) and the models it deploys.

The entrypoints (modal_app.py, modal_download.py) read the environment and hand it here (the
settings schema, the mapping `read_deploy_models` takes); nothing under modal_deploy/ reads
the environment itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from contract.aimodels import ServedModel, load_models_file, merge_entries, parse_entries
from contract.errors import ConfigError

# Containers rebuild the plan from this variable, so they define the same classes as the deploy.
MODELS_JSON_ENV = "RUNNER_MODELS_JSON"
SAMPLE_MODELS_FILE = Path(__file__).resolve().parent.parent / "examples" / "aiModels.modal.json"


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
    web_label: str = Field(
        "",
        description="Label of the web URL (https://<workspace>--<label>.modal.run); "
        "default: the app name.",
    )
    web_max_inputs: int = Field(
        100, gt=0, description="Requests one adapter container serves at once (all async)."
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
