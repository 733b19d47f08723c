"""`python -m adapter`: the service under uvicorn, with what uvicorn's own flags cannot read
from our settings: the drain deadline on SIGTERM (ADAPTER_SHUTDOWN_DRAIN_S) and the header
timeout (ADAPTER_HEADER_TIMEOUT_S, through a protocol class).

    python -m adapter --host 0.0.0.0 --port 8000

`uvicorn adapter.main:app` serves the same app, without those two unless given as uvicorn's own
flags: `--timeout-graceful-shutdown 25 --http adapter.web.timeouts:HeaderTimeoutH11Protocol`.
"""

from __future__ import annotations

import argparse

import uvicorn


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m adapter", description="Serve the Livepeer AI runner contract."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to bind (8000)")
    parser.add_argument("--log-level", default="info", help="uvicorn's log level (info)")
    args = parser.parse_args(argv)

    # Importing the entrypoint builds the app, or prints its start-up error and exits.
    from adapter.main import app, settings
    from adapter.web.timeouts import HeaderTimeoutH11Protocol

    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        http=HeaderTimeoutH11Protocol,
        timeout_graceful_shutdown=settings.shutdown_drain_s,  # type: ignore[arg-type]
    )


if __name__ == "__main__":
    main()
