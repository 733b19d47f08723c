"""How one adapter's served models map to Live Runner registrations: one app per model.

go-livepeer counts capacity and price per registration, so each served (pipeline, model) is its
own app, under its own path prefix of the door:

    runner_url   {public_url}[/{path secret}]/{pipeline}/{model_id}
    app          {pipeline}/{model_id}                 (go-livepeer's `pipeline/model` convention)
    label        [{prefix}-]{pipeline}--{model_id with "/" as "--"}
    routes       POST {runner_url}/{pipeline}          the batch route and body clients know
                 GET  {runner_url}/health              200 when the model can serve now, else 503

The orchestrator joins the client's app path onto runner_url, so a client of the app calls
`{discovery url}/{pipeline}`: a sub-path, never the bare app URL (which go-livepeer answers with
a 301 before it reaches us).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from contract.aimodels import ServedModel
from contract.errors import ConfigError
from contract.pipelines import PIPELINE_SPECS, Pipeline

HEALTH_PATH = "/health"
# Prefix of the door on the adapter's own port (ADAPTER_LIVE_RUNNER_SERVE_ON_MAIN).
MAIN_PREFIX = "/live-runner"
_LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# Characters a model id may carry into a URL path unescaped (Hugging Face ids use these).
_PATH_SAFE = "/-._~"


@dataclass(frozen=True)
class LiveApp:
    """One served model as a Live Runner single-shot app."""

    model: ServedModel
    label: str

    @property
    def pipeline(self) -> Pipeline:
        return self.model.pipeline

    @property
    def app_id(self) -> str:
        return f"{self.model.pipeline.value}/{self.model.model_id}"

    @property
    def prefix(self) -> str:
        """The app's path below the door's root (and below the path secret), decoded."""
        return f"/{self.model.pipeline.value}/{self.model.model_id}"

    @property
    def route(self) -> str:
        """The pipeline's route below the app's prefix, as go-livepeer's batch clients call it."""
        return f"/{self.model.pipeline.value}"

    @property
    def accepts(self) -> tuple[str, ...]:
        """The request bodies the app's route takes."""
        if PIPELINE_SPECS[self.pipeline].body == "json":
            return ("application/json",)
        return ("multipart/form-data", "application/json (uploads as base64 or data URLs)")

    def runner_url(self, base: str) -> str:
        """The app's absolute URL below `base` (the door's public URL, with its secret)."""
        return base.rstrip("/") + quote(self.prefix, safe=_PATH_SAFE)

    def health_url(self, base: str) -> str:
        # Absolute: go-livepeer would join a relative one onto runner_url as a string.
        return self.runner_url(base) + HEALTH_PATH


def label_for(model: ServedModel, prefix: str = "") -> str:
    """A label that is unique, trimmed and free of `/` (usable with `routing: label` too)."""
    text = f"{model.pipeline.value}--{model.model_id.replace('/', '--')}"
    label = _LABEL_UNSAFE.sub("-", text).strip("-")
    return f"{prefix}-{label}" if prefix else label


def live_apps(models: list[ServedModel], label_prefix: str = "") -> list[LiveApp]:
    """Every served model as an app; two models whose labels would collide are refused."""
    apps: list[LiveApp] = []
    seen: dict[str, ServedModel] = {}
    for model in models:
        if not model.model_id.strip() or model.model_id != model.model_id.strip():
            raise ConfigError(f"{model.key}: a Live Runner app needs a model_id without spaces")
        if any(part in ("", ".", "..") for part in model.model_id.split("/")):
            raise ConfigError(
                f"{model.key}: model_id {model.model_id!r} cannot be a URL path of the Live "
                "Runner door (empty, '.' or '..' segments)"
            )
        label = label_for(model, label_prefix)
        if label in seen:
            raise ConfigError(
                f"{model.key} and {seen[label].key} would both register the Live Runner label "
                f"{label!r}; rename one model_id"
            )
        seen[label] = model
        apps.append(LiveApp(model=model, label=label))
    return apps
