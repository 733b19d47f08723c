"""The static registration: the `{"runners": [...]}` document go-livepeer's -liveRunnerConfig (or
`POST /registerLiveRunners`) takes, one entry per served model, checked against go-livepeer's
rules before it is printed or written.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from adapter.live_runner.apps import LiveApp, live_apps
from adapter.live_runner.prices import PriceOptions, Quote, quote_all
from adapter.settings import LiveRunnerSettings, Settings, demo_entries
from contract.aimodels import ModelEntry, ServedModel, parse_entries
from contract.errors import ConfigError
from contract.pipelines import PIPELINE_SPECS

MODE = "single-shot"
HEALTHY_STATUS_CODE = 200
MAX_METADATA_BYTES = 1024
MODES = frozenset({"persistent", "single-shot", "single_shot"})
UNITS = frozenset({"hour", "720p", "fixed"})


def configured_entries(settings: Settings) -> list[ModelEntry]:
    """The aiModels.json entries as written (their prices), or the demo's."""
    if settings.models_config is None:
        return demo_entries(settings)
    try:
        raw = json.loads(settings.models_config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{settings.models_config}: {exc}") from exc
    return parse_entries(raw, str(settings.models_config))


def door_base_url(live: LiveRunnerSettings) -> str:
    """Where the orchestrator reaches the door, path secret included (never print it)."""
    base = live.public_url.rstrip("/")
    if not base:
        if not live.port:
            raise ConfigError(
                "ADAPTER_PUBLIC_URL is not set: give the door's address as the orchestrator "
                "reaches it (e.g. https://<adapter>/live-runner on the adapter's own port)"
            )
        if live.host in ("0.0.0.0", "::", ""):
            raise ConfigError(
                f"ADAPTER_LIVE_RUNNER_HOST={live.host} is no address to reach: set "
                "ADAPTER_PUBLIC_URL to the door's address as the orchestrator reaches it"
            )
        host = f"[{live.host}]" if ":" in live.host else live.host
        base = f"http://{host}:{live.port}"
    secret = live.path_secret.get_secret_value()
    return f"{base}/{secret}" if secret else base


def gpu_of(settings: Settings, model: ServedModel) -> dict[str, Any] | None:
    """The registration's `gpu`: Modal's GPU kind, the local GPU by NVML, or none (CPU, http)."""
    if settings.backend == "modal":
        return {"name": model.runner.modal.gpu}
    if settings.backend != "local" or settings.device == "cpu":
        return None
    gpu = _local_gpu(int(settings.device.partition(":")[2] or 0))
    return dict(gpu) if gpu is not None else None


@functools.cache
def _local_gpu(index: int) -> tuple[tuple[str, Any], ...] | None:
    """The local GPU by NVML, asked once (heartbeats rebuild the registration every beat)."""
    from adapter.hardware import gpu_compute_info

    gpu = gpu_compute_info().get(index)
    if gpu is None:
        return None
    return (("id", gpu.id), ("name", gpu.name), ("vram_mb", gpu.memory_total // 2**20))


def metadata_of(app: LiveApp) -> str:
    """Public, at most 1,024 bytes, no secret: what a client needs to call the app."""
    spec = PIPELINE_SPECS[app.pipeline]
    full = {
        "pipeline": app.pipeline.value,
        "model_id": app.model.model_id,
        "route": app.route,
        "accepts": list(app.accepts),
        "health": "/health",
        # A pipeline of our own is documented in our OpenAPI document, not the runner's.
        "api": f"{'Livepeer AI runner' if spec.runner_contract else 'modal-ai-runner'} "
        f"{spec.operation_id}",
    }
    text = json.dumps(full, separators=(",", ":"))
    if len(text.encode()) > MAX_METADATA_BYTES:
        text = json.dumps({"route": app.route}, separators=(",", ":"))
    return text


def runner_fields(settings: Settings, app: LiveApp, base: str, quote: Quote) -> dict[str, Any]:
    """What a static entry and a heartbeat share."""
    fields: dict[str, Any] = {
        "label": app.label,
        "app": app.app_id,
        "runner_url": app.runner_url(base),
        "mode": MODE,
        # Sessions the orchestrator may hold at once: what the model really runs at once.
        "capacity": app.model.max_in_flight,
        "price_info": quote.price_info,
        "version": settings.runner_version,
        "metadata": metadata_of(app),
    }
    gpu = gpu_of(settings, app.model)
    if gpu is not None:
        fields["gpu"] = gpu
    return fields


def build_document(
    settings: Settings,
    models: list[ServedModel],
    entries: list[ModelEntry],
    options: PriceOptions,
) -> tuple[dict[str, Any], dict[str, Quote]]:
    """The document and each app's quote (by label); ConfigError when it cannot be made."""
    live = settings.live_runner
    base = door_base_url(live)
    quotes = quote_all(models, entries, options)
    runners, by_label = [], {}
    for app in live_apps(models, live.label_prefix):
        fields = runner_fields(settings, app, base, quotes[app.model.key])
        entry = {
            **{key: fields.pop(key) for key in ("label", "app", "runner_url")},
            "health_url": app.health_url(base),
            "healthy_status_code": HEALTHY_STATUS_CODE,
            **fields,
        }
        runners.append(entry)
        by_label[app.label] = quotes[app.model.key]
    document = {"runners": runners}
    problems = document_problems(document, secrets_of(settings, models))
    if problems:
        raise ConfigError("the registration would be refused:\n" + "\n".join(problems))
    return document, by_label


def secrets_of(settings: Settings, models: list[ServedModel]) -> list[str]:
    """Values that must never appear in public fields."""
    live = settings.live_runner
    values = [
        settings.auth_token,
        live.path_secret.get_secret_value(),
        live.orch_secret.get_secret_value(),
        *(token for model in models for token in model.tokens),
        *(model.runner.upstream_token for model in models),
    ]
    return [value for value in values if value]


def _url_problem(value: Any, absolute_only: bool) -> str | None:
    if not isinstance(value, str) or not value:
        return "is required"
    if not absolute_only and value.startswith("/"):
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an absolute http(s) URL with a host"
    return None


def document_problems(document: Any, secrets: Sequence[str] = ()) -> list[str]:
    """go-livepeer's rules for a static batch (LIVE-RUNNER.md §5), as a list of problems."""
    if not isinstance(document, dict) or not isinstance(document.get("runners"), list):
        return ['expected {"runners": [...]}']
    problems: list[str] = []
    labels: set[str] = set()
    for index, entry in enumerate(document["runners"]):
        where = f"runners[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: expected an object")
            continue
        label = entry.get("label")
        if not isinstance(label, str) or not label.strip() or label != label.strip():
            problems.append(f"{where}: label must be a non-empty trimmed string")
        elif label in labels:
            problems.append(f"{where}: label {label!r} is not unique")
        else:
            labels.add(label)
        if entry.get("routing") == "label" and "/" in str(label):
            problems.append(f"{where}: a label routed by label cannot hold '/'")
        for field, absolute in (("runner_url", True), ("health_url", False)):
            problem = _url_problem(entry.get(field), absolute)
            if problem:
                problems.append(f"{where}: {field} {problem}")
        code = entry.get("healthy_status_code", 200)
        if not isinstance(code, int) or not 100 <= code <= 599:
            problems.append(f"{where}: healthy_status_code must be 100-599")
        app = entry.get("app")
        if not isinstance(app, str) or not app.strip() or app != app.strip():
            problems.append(f"{where}: app must be a non-empty trimmed string")
        metadata = entry.get("metadata", "")
        if not isinstance(metadata, str) or len(metadata.encode()) > MAX_METADATA_BYTES:
            problems.append(f"{where}: metadata must be a string of at most 1,024 bytes")
        public = json.dumps(
            {k: v for k, v in entry.items() if k not in ("runner_url", "health_url")},
            default=str,
        )
        if any(secret in public for secret in secrets):
            problems.append(f"{where}: a public field holds a secret")
        if entry.get("mode", "persistent") not in MODES:
            problems.append(f"{where}: mode must be one of {sorted(MODES)}")
        capacity = entry.get("capacity", 0)
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 0:
            problems.append(f"{where}: capacity must be a non-negative integer")
        problems += [f"{where}: {p}" for p in _price_problems(entry.get("price_info"))]
    return problems


def _price_problems(info: Any) -> list[str]:
    if not isinstance(info, dict):
        return ["price_info is required (on-chain)"]
    problems = []
    try:
        price = Decimal(str(info.get("price")))
        if not price.is_finite() or price <= 0:
            problems.append("price_info.price must be a positive decimal")
    except ArithmeticError:
        problems.append("price_info.price must be a positive decimal")
    if info.get("currency", "usd") != "usd":
        problems.append("price_info.currency must be usd")
    if info.get("unit", "hour") not in UNITS:
        problems.append(f"price_info.unit must be one of {sorted(UNITS)}")
    return problems


def json_number(value: Any) -> Any:
    if isinstance(value, Decimal):
        # A JSON number (go-livepeer reads a json.Number); a price has 4 significant digits,
        # which a float writes back exactly.
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, default=json_number) + "\n"


def write_atomically(path: Path, text: str) -> None:
    """Write `text` beside `path` and rename it over: a reader sees the old file or the new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        # The document holds the path secret in its URLs: readable by its owner only.
        os.chmod(temp, 0o600)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
