"""The ASGI application: pages, JSON API, ``/ws`` and static files."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI, WebSocket
from fastapi.staticfiles import StaticFiles

from .. import __version__
from ..config import Settings
from ..relay.directory import RelayDirectory
from ..signaling.endpoint import Signaling
from ..signaling.registry import Registry
from ..store.clock import now_ms
from ..store.db import Database
from . import api, errors, pages
from .deps import Services
from .security import SecurityHeaders

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent.parent / "static"


def create_app(settings: Settings) -> FastAPI:
    """Build the application; the database is migrated when it starts."""
    db = Database(settings.sqlalchemy_url)
    registry = Registry(db, settings.rejoin_grace_seconds)
    # Raises before anything listens when a relay is outside the region.
    relay = RelayDirectory(settings)
    signaling = Signaling(settings, db, registry, relay.ice_config)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(db.migrate)
        await relay.start()
        sweeper = asyncio.create_task(_sweep(registry))
        log.info("sprechzimmer %s ready in region %s", __version__, settings.region)
        try:
            yield
        finally:
            sweeper.cancel()
            await relay.stop()
            db.dispose()

    app = FastAPI(
        title="Sprechzimmer",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.services = Services(settings, db, registry)
    app.state.relay = relay
    errors.install(app)
    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await signaling.serve(websocket)

    app.add_middleware(SecurityHeaders, origin=settings.public_base_url)
    return app


async def _sweep(registry: Registry) -> None:
    """Forget rooms whose participants are gone for longer than the grace."""
    while True:
        await asyncio.sleep(15)
        registry.sweep(now_ms())
