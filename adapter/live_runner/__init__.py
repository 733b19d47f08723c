"""go-livepeer's Live Runner door: every served model as a single-shot app (docs/live-runner.md).

- `apps`: one app per (pipeline, model), its label, app id and URLs.
- `routes`: the door's ASGI app (the batch route and body per app, JSON uploads, health).
- `bodies`: JSON (base64 or data URL uploads) and multipart bodies read into request models.
- `prices`: each app's `price_info`, computed by `pricing/`.
- `registration`: the static `{"runners": [...]}` document (`python -m adapter.live_runner
  registration`).
- `heartbeat`: dynamic registration with the orchestrator.
- `server`: the door's listener and lifecycle in the adapter, and its safety checks.
"""

from adapter.live_runner.server import LiveRunner

__all__ = ["LiveRunner"]
