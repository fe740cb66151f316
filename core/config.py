"""Settings: one flat class read from EMERGENCY_* environment variables (and `.env`),
validated at start; each group of fields is commented with the module that uses it."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRET = "dev-only-placeholder-secret-change-me-in-production"  # noqa: S105 - refused outside development

# The keys EMERGENCY_TARGET_BY_TYPE may give per incident type (seconds).
TARGET_FIELDS = frozenset({"dispatch_s", "travel_s", "response_s"})

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
    # Login throttling (command/auth/login.py), counted in the database so every server process
    # shares it: after `login_max_failures` failures for one username, or
    # `login_max_failures_per_address` from one client address, within `login_window_s`,
    # logins there are refused (429 + Retry-After) for `login_window_s`. At most
    # `login_max_concurrent` password checks run at once per process; a login that waits
    # longer than `login_wait_s` for one, or finds `login_max_waiting` ahead, gets 503.
    login_max_failures: int = Field(default=10, ge=1, le=10_000)
    login_max_failures_per_address: int = Field(default=100, ge=1, le=1_000_000)
    login_window_s: int = Field(default=900, ge=1, le=7 * 24 * 3600)
    login_max_concurrent: int = Field(default=2, ge=1, le=64)
    login_max_waiting: int = Field(default=16, ge=0, le=10_000)
    login_wait_s: float = Field(default=2.0, gt=0, le=60)
    # Reverse proxies (addresses or CIDRs) whose X-Forwarded-For names the client; from any
    # other peer the header is ignored. `emergency serve` passes the same list to uvicorn.
    trusted_proxies: tuple[str, ...] = ()
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # CAP alerts may carry long area lists and inline resources: their own limit.
    workers: int = Field(default=1, ge=1, le=64)  # `emergency serve` processes
    alert_max_bytes: int = Field(default=2_097_152, ge=1024)
    # A gateway's batch of up to 1,000 fixes (~100-250 bytes each): its own body limit.
    positions_max_bytes: int = Field(default=512 * 1024, ge=1024, le=16 * 1024 * 1024)
    # A GIS file uploaded to POST /api/import/{kind} (multipart): its own body limit.
    import_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024, le=2 * 1024**3)
    # Intake admission: alerts queued or being taken in per process, and how long one may
    # wait for its turn before it is answered 503 + Retry-After (the sender retries;
    # nothing is half-done). Alerts queued together are taken in together, up to
    # `alert_batch_max` per transaction (command/intake/queue.py).
    alert_max_in_flight: int = Field(default=1000, ge=0, le=100_000)
    alert_batch_max: int = Field(default=50, ge=1, le=1000)
    alert_queue_timeout_s: float = Field(default=5.0, gt=0, le=120)
    page_limit_default: int = Field(default=100, ge=1)
    page_limit_max: int = Field(default=1000, ge=1)
    # A position's `recorded_at` (HTTP and WebSocket) must lie within this window around
    # the server's clock: a phone may upload a backlog after days offline, but a fix from
    # year 0001 or from next week is a broken clock (core/validate.py; read from the
    # environment by the position schema, resources/schemas.py).
    position_max_age_s: int = Field(default=7 * 24 * 3600, ge=60, le=366 * 24 * 3600)
    position_max_future_s: int = Field(default=300, ge=0, le=24 * 3600)
    # The track (unit_position) keeps this many days; older daily partitions are dropped
    # and an older fix is refused (resources/avl/).
    track_retention_days: int = Field(default=90, ge=1, le=3650)
    # A fix implying a faster move from the unit's last good fix is kept in the track,
    # flagged "jump", and not used as the unit's position (~250 km/h by default).
    position_max_speed_mps: float = Field(default=70.0, gt=0, le=1000)
    # Positions are committed in groups: a flush every time the last one ends, at most
    # this many fixes (the 202 is answered once the group is committed).
    position_flush_rows: int = Field(default=2000, ge=1, le=20_000)
    demo_password: str = "demo-pass-2026"  # noqa: S105 - demo users exist only in development
    # Which city `seed demo` loads and the server routes on without EMERGENCY_OSM_FILE
    # (command/seed.py CITIES); the tests pin the small one, "helsinki".
    demo_city: str = Field(default="columbus", pattern=r"^[a-z][a-z0-9_]{0,39}$")
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
    # Users behind open sockets are read again this often: a disabled user, a role or unit
    # change or revoked tokens close the socket (4001) within it (at most 5 s, by design).
    ws_recheck_s: float = Field(default=2.0, ge=0.1, le=5)
    bus_poll_interval_s: float = Field(default=2.0, ge=0.05, le=60)
    event_retention_s: int = Field(default=7 * 24 * 3600, ge=60)
    # Callers' phone numbers (personal data) are blanked on calls received longer ago than
    # this (hourly, by the server's background jobs; command/incidents/calls.py).
    caller_phone_retention_days: int = Field(default=30, ge=1, le=36_500)
    # The audit chain (docs/security.md). Its links are keyed with a key derived from
    # `audit_key` (default: `secret_key`); retired keys still verify the rows they made.
    audit_key: str | None = Field(default=None, min_length=32)
    audit_retired_keys: tuple[str, ...] = ()
    # Signed checkpoints of the chain's head, kept outside the database (None: none are
    # written by the server; `emergency audit checkpoint --dir` still can).
    audit_checkpoint_dir: Path | None = None
    audit_checkpoint_s: float = Field(default=300.0, ge=1, le=86_400)
    # The sealer's pass for rows other processes committed and did not seal (a crash).
    audit_seal_poll_s: float = Field(default=1.0, ge=0.01, le=60)
    # Response targets (DESIGN "Targets"; dispatch/targets.py), in seconds, shared by
    # the KPIs, the console's timers and the drills. `dispatch_s`: reported -> dispatched;
    # `travel_s`: dispatched -> first unit on scene; the response target (reported -> first
    # unit on scene) is their sum unless `response_s` is set. Per incident type, as JSON:
    # EMERGENCY_TARGET_BY_TYPE='{"fire": {"travel_s": 300}, "medical": {"response_s": 480}}'
    # (a type given here replaces the default fire entry, so repeat it if it should stay).
    target_dispatch_s: int = Field(default=60, ge=1, le=86_400)
    target_travel_s: int = Field(default=480, ge=1, le=86_400)
    target_by_type: dict[str, dict[str, int]] = Field(
        default_factory=lambda: {"fire": {"travel_s": 300}}
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # HTTP connections (`emergency serve`, command/server.py): an idle keep-alive
    # connection (or one that never sends a request) is closed after `http_keepalive_s`;
    # once a request has begun, its head must arrive within `http_header_timeout_s` and
    # its body within `http_body_timeout_s` (slowloris clients are cut off, answered 408).
    http_keepalive_s: float = Field(default=5.0, gt=0, le=3600)
    http_header_timeout_s: float = Field(default=10.0, gt=0, le=600)
    http_body_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    # /metrics: open to clients whose address is in `metrics_allow` (CIDRs; default
    # loopback only), and to anyone sending `Authorization: Bearer <metrics_token>`.
    metrics_allow: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    metrics_token: str | None = Field(default=None, min_length=16)

    @field_validator("metrics_allow", "trusted_proxies")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # A typo must stop the server at start: a malformed entry would otherwise open or
        # close /metrics silently, and uvicorn treats one as a literal that never matches.
        for network in value:
            ipaddress.ip_network(network, strict=False)
        return value

    @field_validator("target_by_type")
    @classmethod
    def _targets(cls, value: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
        # A misspelt key would silently fall back to the default target: refuse it at start.
        for incident_type, fields in value.items():
            if not incident_type or len(incident_type) > 40:
                raise ValueError(f"target_by_type: bad incident type {incident_type!r}")
            unknown = set(fields) - TARGET_FIELDS
            if unknown:
                raise ValueError(
                    f"target_by_type[{incident_type!r}]: unknown {sorted(unknown)}; "
                    f"use {sorted(TARGET_FIELDS)}"
                )
            for name, seconds in fields.items():
                if not 1 <= seconds <= 86_400:
                    raise ValueError(
                        f"target_by_type[{incident_type!r}].{name}: {seconds} s is not "
                        "within 1..86400"
                    )
        return value

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
