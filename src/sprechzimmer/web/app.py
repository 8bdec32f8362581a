"""The ASGI application: pages, JSON API, ``/ws`` and static files."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI, Response, WebSocket
from fastapi.staticfiles import StaticFiles

from .. import __version__
from ..config import Settings
from ..quality.metrics import QualityMetrics
from ..quality.samples import Sample, SampleError, store_sample
from ..relay.directory import RelayDirectory
from ..signaling.endpoint import Signaling
from ..signaling.registry import Registry
from ..store.billing import close_open_intervals
from ..store.clock import now_ms, utcnow
from ..store.db import Database
from ..store.purge import purge_loop
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
    metrics = QualityMetrics()
    signaling = Signaling(settings, db, registry, relay.ice_config)

    async def take_sample(session_id: str, raw: dict) -> None:
        try:
            sample = Sample.parse(raw)
        except SampleError:
            metrics.error("client")
            log.info("dropped an invalid quality sample")
            return
        tag = registry.call_tag(session_id)
        await asyncio.to_thread(store_sample, db, sample, call_tag=tag, now=utcnow())
        metrics.observe_sample(sample)
        if sample.path and registry.first_path_report(session_id):
            metrics.call_path(sample.path)

    def count_load() -> None:
        rooms = registry.rooms()
        metrics.set_load(len(rooms), sum(room.client_waiting for room in rooms))

    signaling.on_quality = take_sample
    registry.on_change = count_load

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(db.migrate)
        # A previous process may have stopped mid-call (kill -9, power loss).
        await asyncio.to_thread(close_open_intervals, db, now_ms())
        await relay.start()
        sweeper = asyncio.create_task(_sweep(registry))
        purger = asyncio.create_task(purge_loop(db, settings))
        log.info("sprechzimmer %s ready in region %s", __version__, settings.region)
        try:
            yield
        finally:
            sweeper.cancel()
            purger.cancel()
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
    app.state.metrics = metrics
    app.state.relay = relay
    errors.install(app)
    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

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
