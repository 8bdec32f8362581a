"""The one mapper from errors to HTTP statuses and JSON bodies."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.responses import JSONResponse

from ..rooms.errors import (
    Conflict,
    Gone,
    NotAllowed,
    NotAuthorised,
    NotFound,
    SprechzimmerError,
    UserError,
)
from .throttle import TooManyAttempts

log = logging.getLogger(__name__)


def status_for(error: Exception) -> int:
    if isinstance(error, TooManyAttempts):
        return 429
    if isinstance(error, NotAuthorised):
        return 401
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, Gone):
        return 410
    if isinstance(error, Conflict | NotAllowed):
        return 409
    if isinstance(error, UserError):
        return 400
    return 500


def error_body(code: str, message: str, **extra: object) -> dict:
    return {"error": {"code": code, "message": message, **extra}}


def install(app: FastAPI) -> None:
    """Register the handlers that turn errors into answers."""

    @app.exception_handler(SprechzimmerError)
    async def known(request: Request, error: SprechzimmerError) -> JSONResponse:
        status = status_for(error)
        if isinstance(error, NotAuthorised):
            log.info("%s %s: not authorised", request.method, request.url.path)
            body = error_body(error.code, "not authorised")
        else:
            extra = {"reason": error.reason} if isinstance(error, Gone) else {}
            body = error_body(error.code, str(error), **extra)
        return JSONResponse(body, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        fields = sorted({".".join(map(str, e["loc"][1:])) for e in error.errors()})
        body = error_body("invalid", "invalid request", fields=fields)
        return JSONResponse(body, status_code=422)

    @app.exception_handler(Exception)
    async def internal(request: Request, error: Exception) -> JSONResponse:
        log.exception("%s %s: internal error", request.method, request.url.path)
        return JSONResponse(error_body("internal", "internal error"), status_code=500)
