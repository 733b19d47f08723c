"""The deploy's own settings (`ADAPTER_MODAL_*`): names of the Modal objects and the web function.

Only a schema: the entrypoints (modal_app.py, modal_download.py) read the environment into it
and hand it to the plan; nothing under modal_deploy/ reads the environment itself.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
        "", description="Label of the web URL (https://<workspace>--<label>.modal.run); "
        "default: the app name."
    )
    web_max_inputs: int = Field(
        100, gt=0, description="Requests one adapter container serves at once (all async)."
    )
    web: bool = Field(
        True,
        description="Serve the adapter on Modal (topology 1). False when the adapter runs beside "
        "the orchestrator and only the GPU classes are deployed (topology 2).",
    )
