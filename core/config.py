"""Settings from the environment (pydantic-settings), split by concern."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRET = "dev-only-placeholder-secret-change-me-in-production"  # noqa: S105 - refused outside development

DEFAULT_DATABASE_URL = "postgresql://emergency:emergency@127.0.0.1:5432/emergency"


class Settings(BaseSettings):
    """All configuration; every variable is prefixed EMERGENCY_ except DATABASE_URL."""

    model_config = SettingsConfigDict(env_prefix="EMERGENCY_", extra="ignore", frozen=True)

    env: Literal["development", "test", "production"] = "development"
    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        validation_alias=AliasChoices("DATABASE_URL", "EMERGENCY_DATABASE_URL"),
    )
    db_pool_size: int = Field(default=10, ge=1, le=200)
    secret_key: str = PLACEHOLDER_SECRET
    token_ttl_s: int = Field(default=12 * 3600, ge=60, le=7 * 24 * 3600)
    api_key_clock_skew_s: int = Field(default=300, ge=1, le=3600)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # CAP alerts may carry long area lists and inline resources: their own limit.
    workers: int = Field(default=1, ge=1, le=64)  # `emergency serve` processes
    alert_max_bytes: int = Field(default=2_097_152, ge=1024)
    # Intake admission: alerts queued or being taken in per process, and how long one may
    # wait for its turn before it is answered 503 + Retry-After (the sender retries;
    # nothing is half-done). Alerts queued together are taken in together, up to
    # `alert_batch_max` per transaction (command/alert_queue.py).
    alert_max_in_flight: int = Field(default=1000, ge=0, le=100_000)
    alert_batch_max: int = Field(default=50, ge=1, le=1000)
    alert_queue_timeout_s: float = Field(default=5.0, gt=0, le=120)
    page_limit_default: int = Field(default=100, ge=1)
    page_limit_max: int = Field(default=1000, ge=1)
    demo_password: str = "demo-pass-2026"  # noqa: S105 - demo users exist only in development
    osm_file: Path | None = Field(
        default=None, description="road network file; default: the demo city's extract"
    )
    road_profile: Path | None = None
    graph_cache_dir: Path | None = None
    max_snap_m: float = Field(default=500.0, gt=0, le=10_000)
    # Realtime hub (WebSocket /ws) and its PostgreSQL bus.
    realtime: bool = True
    ws_allowed_origins: tuple[str, ...] = Field(
        default=(), description="browser origins allowed on /ws besides the page's own"
    )
    ws_queue_max: int = Field(default=1000, ge=10, le=100_000)
    ws_heartbeat_s: float = Field(default=15.0, ge=1, le=300)
    ws_ack_timeout_s: float = Field(default=5.0, ge=0.2, le=300)
    ws_max_frame_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    ws_batch_linger_s: float = Field(default=0.1, ge=0, le=5)
    bus_poll_interval_s: float = Field(default=2.0, ge=0.05, le=60)
    event_retention_s: int = Field(default=7 * 24 * 3600, ge=60)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)

    @model_validator(mode="after")
    def _refuse_placeholder_secret(self) -> Settings:
        if self.env == "production" and (
            self.secret_key == PLACEHOLDER_SECRET or len(self.secret_key) < 32
        ):
            raise ValueError(
                "EMERGENCY_SECRET_KEY must be set to a random value of 32+ characters "
                "in production (for example: python -c 'import secrets; "
                "print(secrets.token_urlsafe(48))')"
            )
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
