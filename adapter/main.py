"""The entrypoint: `uvicorn adapter.main:app`. The only module that reads the environment.

With no configuration it serves the built-in demo model; point ADAPTER_MODELS_CONFIG at an
aiModels.json to serve real models.
"""

from __future__ import annotations

import logging

from adapter.app import create_app
from adapter.settings import Settings

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

app = create_app(Settings())
