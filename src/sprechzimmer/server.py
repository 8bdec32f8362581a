"""Running the application under uvicorn with private defaults."""

from __future__ import annotations

import uvicorn

from . import logs
from .config import Settings
from .web.app import create_app


def uvicorn_config(settings: Settings, host: str, port: int, **extra) -> uvicorn.Config:
    """Uvicorn settings: no access log, capped WebSocket frames, pings."""
    logs.quiet_uvicorn()
    return uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        access_log=False,
        log_config=None,
        server_header=False,
        ws_max_size=settings.ws_max_message_bytes,
        ws_ping_interval=settings.ws_ping_seconds,
        ws_ping_timeout=settings.ws_ping_seconds,
        **extra,
    )


def run(settings: Settings, host: str, port: int) -> None:
    uvicorn.Server(uvicorn_config(settings, host, port)).run()
