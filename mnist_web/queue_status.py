"""GET /queue_status: the training queue as JSON, for monitors and scripts (the Train tab shows the same).

    {"running": 1, "waiting": 3, "slots": 2, "max_waiting": 40, "backend": "local", "where": "..."}
"""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

PATH = "/queue_status"


def queue_status_route(service) -> Route:
    def handle(request: Request) -> JSONResponse:   # sync: Starlette runs it in its thread pool
        return JSONResponse(service.status(), headers={"Cache-Control": "no-store"})
    return Route(PATH, handle, methods=["GET"])
