"""The pages: the home page, the big screen, the responder's phone app and their assets."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

FRONTEND = Path(__file__).resolve().parent.parent / "frontend"

router = APIRouter(include_in_schema=False)


@router.get("/")
def index() -> FileResponse:
    return FileResponse(FRONTEND / "index.html")


@router.get("/screen")
def screen() -> FileResponse:
    """The command centre's big-screen live situation map."""
    return FileResponse(FRONTEND / "screen.html")


@router.get("/responder")
def responder() -> FileResponse:
    """The responder's phone app (a PWA)."""
    return FileResponse(FRONTEND / "responder.html")


@router.get("/sw.js")
def service_worker() -> FileResponse:
    """The responder app's service worker, served from the root so it may control
    /responder (and cache its shell for a flaky connection)."""
    return FileResponse(
        FRONTEND / "static" / "sw.js",
        media_type="text/javascript",
        headers={"Cache-Control": "no-cache", "Service-Worker-Allowed": "/"},
    )


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=FRONTEND / "static"), name="static")
