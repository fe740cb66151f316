"""The pages: the home page, the big screen, the responder's phone app and their assets."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
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


# The API docs from vendored assets (scripts/vendor.sh): FastAPI's default pages load Swagger
# UI and ReDoc from a public CDN (and ReDoc Google's fonts), so on a closed government network
# /docs was blank. The create_app FastAPI has docs_url and redoc_url off.
VENDOR = "/static/vendor"
TITLE = "Emergency command and dispatch (智慧应急指挥调度)"


@router.get("/docs")
def swagger_ui() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title=f"{TITLE} - API",
        swagger_js_url=f"{VENDOR}/swagger-ui/swagger-ui-bundle.js",
        swagger_css_url=f"{VENDOR}/swagger-ui/swagger-ui.css",
        swagger_favicon_url=f"{VENDOR}/swagger-ui/favicon-32x32.png",
        # No badge asking the public validator.swagger.io about our schema.
        swagger_ui_parameters={"validatorUrl": None},
    )


@router.get("/redoc")
def redoc() -> HTMLResponse:
    return get_redoc_html(
        openapi_url="/openapi.json",
        title=f"{TITLE} - API",
        redoc_js_url=f"{VENDOR}/redoc/redoc.standalone.js",
        redoc_favicon_url=f"{VENDOR}/swagger-ui/favicon-32x32.png",
        with_google_fonts=False,
    )


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=FRONTEND / "static"), name="static")
