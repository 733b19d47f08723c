"""The entrypoint: `uvicorn adapter.main:app` (or `python -m adapter`, which runs this app under
uvicorn with the drain deadline and header timeout of the settings). The only module that
reads the environment.

With no configuration it serves the built-in demo model; point ADAPTER_MODELS_CONFIG at an
aiModels.json to serve real models.

A start-up error (a bad aiModels.json, a missing file, a bad setting) is one line on stderr and
exit status 1; ADAPTER_DEBUG=1 shows the traceback instead.
"""

from __future__ import annotations

import logging
import os
import sys

from fastapi import FastAPI
from pydantic import AliasChoices, ValidationError

from adapter.app import create_app
from adapter.settings import Limits, Settings
from adapter.web.timeouts import HeaderTimeoutH11Protocol
from contract.errors import ConfigError

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

STARTUP_FAILURE = 1
_TRUE = ("1", "true", "yes", "on")


def describe_startup_error(exc: BaseException) -> str:
    """One line that says what is wrong, naming the environment variable of a bad setting."""
    if isinstance(exc, ValidationError) and exc.title in (Settings.__name__, Limits.__name__):
        problems = []
        for error in exc.errors():
            name = _variable_names(str(error["loc"][0]) if error["loc"] else "?")
            problems.append(f"{name}: {error['msg']} (got {error.get('input')!r})")
        text = "; ".join(problems)
    elif isinstance(exc, ConfigError | OSError):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    # A configuration error lists each bad entry on a line of its own.
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def _variable_names(loc: str) -> str:
    """The environment variable(s) of a settings field, from the name pydantic reports."""
    if not loc.isupper():
        return f"ADAPTER_{loc.upper()}"
    for model in (Settings, Limits):
        for field in model.model_fields.values():
            alias = field.validation_alias
            if isinstance(alias, AliasChoices) and loc in alias.choices:
                return " or ".join(str(choice) for choice in alias.choices)
    return loc


def _debug() -> bool:
    # Read apart from Settings: a bad setting is among the errors this must report.
    return os.environ.get("ADAPTER_DEBUG", "").strip().lower() in _TRUE


def load() -> tuple[Settings, FastAPI]:
    """The settings and the app; on a start-up error, one line on stderr and exit."""
    try:
        settings = Settings()
        app = create_app(settings)
    except Exception as exc:
        if _debug():
            raise
        print(
            f"modal-ai-runner: cannot start: {describe_startup_error(exc)} "
            "(ADAPTER_DEBUG=1 shows the traceback)",
            file=sys.stderr,
            flush=True,
        )
        raise SystemExit(STARTUP_FAILURE) from None
    # uvicorn's flags cannot read our settings: the protocol class takes its deadline from here
    # (`python -m adapter` hands uvicorn this class; so may `uvicorn --http`).
    HeaderTimeoutH11Protocol.header_timeout_s = settings.header_timeout_s
    return settings, app


settings, app = load()
