"""GET /queue_status: the training queue as JSON, for monitors and scripts (the Train tab shows the same).

    {"running": 1, "waiting": 3, "slots": 2, "max_waiting": 40, "backend": "local", "where": "...",
     "text": "Training on this server: 1 run going, 3 waiting (...)."}
The Train tab's queue line (web/queue_line.js) shows "text" and refreshes from here while it is on screen.
"""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .train_views import counts_text

PATH = "/queue_status"


def queue_status_route(service) -> Route:
    def handle(request: Request) -> JSONResponse:   # sync: Starlette runs it in its thread pool
        st = service.status()
        text = counts_text(st["running"], st["waiting"], st["slots"], st["where"])
        return JSONResponse({**st, "text": text}, headers={"Cache-Control": "no-store"})
    return Route(PATH, handle, methods=["GET"])
