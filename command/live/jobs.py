"""The background jobs of the live situation: the live map's positions, gauges, ending
expired zones, pruning nonces, idempotency keys, throttle rows and acknowledged events,
blanking callers' phones past their retention period, and the track's daily partitions
(made ahead, dropped past their retention)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from command.auth import service as auth
from command.incidents import calls
from command.live.actions import LIVE
from command.zones import ending
from core import idempotency
from core.config import Settings
from realtime import store
from realtime.hub import Hub
from resources.avl import live, track

log = logging.getLogger("emergency.live")
PHONE_PURGE_S = 3600.0  # callers' phones are blanked within an hour of their retention


def purge_caller_phones(sessions: sessionmaker[Session], settings: Settings) -> int:
    """Blank callers' phones older than ``caller_phone_retention_days`` (run hourly, every
    ``PHONE_PURGE_S``, by :func:`background_jobs`); returns how many were blanked."""
    with sessions() as session:
        purged = calls.purge_phones(
            session, retention_days=settings.caller_phone_retention_days, principal=LIVE
        )
        session.commit()
        return purged


POSITIONS_S = 0.25  # the live map's positions: a fix is shown within about this long


TRACK_MAINTAIN_S = 3600.0  # the track's partitions: made ahead, dropped past retention


def maintain_track(sessions: sessionmaker[Session], settings: Settings) -> list[str]:
    """Make the track's coming days' partitions; drop those past the retention."""
    with sessions() as session:
        dropped = track.maintain(session, retention_days=settings.track_retention_days)
        session.commit()
    if dropped:
        log.info("track partitions dropped (retention): %s", ", ".join(dropped))
    return dropped


async def background_jobs(hub: Hub, sessions: sessionmaker[Session], settings: Settings) -> None:
    """Four times a second: the live map's positions. Every ``housekeeping_s``: gauges, ending
    expired warning zones, and pruning. Hourly (``PHONE_PURGE_S``, and once at start):
    blanking callers' phones past their retention period. Meanwhile, every ``recheck_s``:
    the users behind the open connections (:meth:`Hub.recheck`)."""
    loop = asyncio.get_running_loop()
    next_housekeeping = next_phone_purge = 0.0

    def publish_positions() -> int:
        with sessions() as session:
            count = live.publish_positions(session)
            session.commit()
            return count

    def prune() -> None:
        with sessions() as session:
            ending.end_expired_zones(session, LIVE)
            session.commit()
            store.prune_events(session, older_than_s=settings.event_retention_s)
            idempotency.prune(session, older_than_s=24 * 3600)
            auth.prune_nonces(session, skew_s=settings.api_key_clock_skew_s)
            session.commit()

    # Its own task: a slow prune must not hold up closing a disabled user's sockets.
    recheck = asyncio.create_task(hub.recheck_loop(), name="live-recheck")
    try:
        while True:
            await asyncio.sleep(POSITIONS_S)
            try:
                await hub.call(publish_positions)
                if loop.time() >= next_housekeeping:
                    next_housekeeping = loop.time() + hub.config.housekeeping_s
                    await hub.refresh_gauges()
                    await hub.call(prune)
                if loop.time() >= next_phone_purge:
                    next_phone_purge = loop.time() + PHONE_PURGE_S
                    await hub.call(purge_caller_phones, sessions, settings)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be away; try again next round
                log.warning("realtime background job failed: %s", exc)
    finally:
        await stop_task(recheck)


async def track_jobs(sessions: sessionmaker[Session], settings: Settings) -> None:
    """Hourly, and once at start, with or without the realtime hub: the track's coming
    days' partitions made, those past ``track_retention_days`` dropped."""
    while True:
        work = asyncio.ensure_future(asyncio.to_thread(maintain_track, sessions, settings))
        try:
            await asyncio.shield(work)
        except asyncio.CancelledError:
            # Stopping: let the thread's transaction end before the pool is disposed of
            # (a connection returned to a disposed pool is left for the garbage collector).
            with contextlib.suppress(Exception):
                await work
            raise
        except Exception as exc:  # the database may be away; try again next round
            log.warning("track maintenance failed: %s", exc)
        await asyncio.sleep(TRACK_MAINTAIN_S)


async def stop_task(task: asyncio.Task[Any] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
