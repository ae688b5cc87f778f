"""python -m simulator --host 127.0.0.1 --port 8401 [--fast] [--replay DATA_DIR]"""

from __future__ import annotations

import argparse
import os


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("AKA_SIMULATOR_PORT", "8401")))
    parser.add_argument(
        "--fast",
        action="store_true",
        default=None,
        help="zero latency for every model (per-request x-sim-* headers still apply); also enabled by AKA_SIMULATOR_FAST=1",
    )
    parser.add_argument("--catalog", default=None, help="model catalog JSON (default: apps/providers/data/catalog.json)")
    parser.add_argument("--replay", default=None, help="replay mode: a directory of recorded answers (*.jsonl, the"
                        " format of shared/data/routellm; see simulator/replay.py); also AKA_SIMULATOR_REPLAY")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)

    import uvicorn

    from .app import create_app

    app = create_app(fast=args.fast, catalog=args.catalog, replay=args.replay)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        workers=1,
        log_level=args.log_level,
        server_header=False,
        # Longer than any client pool's keep-alive expiry, so a pooled connection is never
        # closed by the server just as the client reuses it.
        timeout_keep_alive=75,
        backlog=4096,
        # A stalled request must not hold up a shutdown.
        timeout_graceful_shutdown=2,
    )


if __name__ == "__main__":
    main()
