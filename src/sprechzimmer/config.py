"""Settings, read from ``SPRECHZIMMER_*`` environment variables.

Every setting has a default that is safe for a single machine: SQLite in
the data directory, an in-process hub, no TURN server and no public STUN
server (a third party would learn both participants' addresses).
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: Retention of raw per-call metadata may never exceed this (GDPR promise).
MAX_RETENTION_DAYS = 90


class TurnServer(BaseModel):
    """One coturn server that shares the TURN secret with this server."""

    #: ``turn:`` / ``turns:`` URLs, e.g. ``turn:turn1.example.de:3478``.
    urls: list[str]
    #: ISO 3166 code of the country the server runs in, e.g. ``DE``.
    region: str
    #: Where to send the health check (host:port, UDP STUN); defaults to the
    #: host and port of the first ``turn:`` URL.
    check: str | None = None

    @field_validator("region")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.strip().upper()


class Settings(BaseSettings):
    """Operator settings; see ``docs/operating.md`` for each one."""

    model_config = SettingsConfigDict(
        env_prefix="SPRECHZIMMER_", env_file=None, extra="ignore"
    )

    data_dir: Path = Path("sprechzimmer-data")
    #: Empty means SQLite at ``<data_dir>/sprechzimmer.db``.
    database_url: str = ""
    #: The address people reach the server at; invite links are built on it.
    public_base_url: str = "http://127.0.0.1:8000"

    #: ``memory`` (one process) or a ``redis://`` URL (several instances).
    hub_url: str = "memory"

    invite_ttl_hours: float = 72.0
    login_ttl_hours: float = 12.0
    #: A participant who dropped may come back this long without admission.
    rejoin_grace_seconds: float = 120.0
    key_rotation_seconds: float = 600.0
    ws_max_message_bytes: int = 64 * 1024
    ws_ping_seconds: float = 15.0
    ws_hello_timeout_seconds: float = 10.0

    #: Region of this signaling server and the regions calls may use.
    region: str = "DE"
    allowed_regions: Annotated[list[str], NoDecode] = ["DE"]
    #: JSON list of :class:`TurnServer`.
    turn_servers: Annotated[list[TurnServer], NoDecode] = []
    turn_secret: str = ""
    turn_credential_ttl_seconds: int = 3600
    turn_health_interval_seconds: float = 30.0
    #: Skip TURN servers outside ``allowed_regions`` instead of refusing to
    #: start (for one server list shared by deployments in several regions).
    turn_skip_foreign_servers: bool = False

    billing_grace_seconds: float = 10.0
    heartbeat_seconds: float = 10.0
    retention_days: int = MAX_RETENTION_DAYS
    aggregate_retention_years: int = 10
    quality_sample_seconds: float = 30.0

    #: Only for tests: lets test hooks in the call page be switched on.
    test_hooks: bool = False
    log_level: str = "INFO"

    @field_validator("allowed_regions", mode="before")
    @classmethod
    def _split_regions(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip().upper() for part in value.split(",") if part]
        return value

    @field_validator("turn_servers", mode="before")
    @classmethod
    def _parse_turn(cls, value: object) -> object:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else []
        return value

    @field_validator("retention_days")
    @classmethod
    def _cap_retention(cls, value: int) -> int:
        if not 1 <= value <= MAX_RETENTION_DAYS:
            raise ValueError(f"must be between 1 and {MAX_RETENTION_DAYS} days")
        return value

    @field_validator("region")
    @classmethod
    def _upper_region(cls, value: str) -> str:
        return value.strip().upper()

    @cached_property
    def sqlalchemy_url(self) -> str:
        """The database URL, SQLite in the data directory when none is set."""
        if self.database_url:
            url = self.database_url
            if url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
            return url
        return f"sqlite:///{(self.data_dir / 'sprechzimmer.db').resolve()}"

    @property
    def secure_cookies(self) -> bool:
        return self.public_base_url.startswith("https://")


Language = Literal["de", "en"]
LANGUAGES: tuple[Language, ...] = ("de", "en")


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment, with keyword overrides."""
    settings = Settings(**overrides)  # type: ignore[arg-type]
    return settings


__all__ = ["LANGUAGES", "MAX_RETENTION_DAYS", "Settings", "TurnServer"]
