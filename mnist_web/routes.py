"""The app's plain HTTP routes, served beside Gradio's own by serving.launch(), and their bounds:

    GET  /mnist/weights       the chosen model's folded weights, for the page's own network (weights.py)
    GET  /mnist/lookalikes    the model's quantised feature index of the training digits (lookalike_routes.py)
    GET  /mnist/digits        training digits' pixels by id, cacheable for good (lookalike_routes.py)
    GET  /mnist/unit          one unit's weights and the training digits that excite it most (network.py)
    POST /mnist/activations   a settled drawing's maps, for a page without weights (network.py)
    GET  /queue_status        the training queue as JSON (queue_status.py; not in read-only mode)

Those that compute or read per request run outside Gradio's queue, so each gets its own concurrency
bound (webguard.Bounded): past ACTIVATIONS_AT_ONCE / UNIT_AT_ONCE / LOOKALIKE_AT_ONCE requests at work,
503 with Retry-After at once, before a worker thread of Starlette's pool (shared with Gradio's own
routes) is taken.
"""
from __future__ import annotations

from starlette.middleware import Middleware
from starlette.routing import Route

from .lookalike_routes import lookalike_routes
from .network import activations_route, unit_route
from .queue_status import queue_status_route
from .services import Services
from .webguard import Bounded
from .weights import weights_route

ACTIVATIONS_AT_ONCE = 2   # drawings' maps computed at once (~7 ms of one core each, ~93 KB of JSON)
UNIT_AT_ONCE = 4          # unit answers at once (a model's first load or an index lookup, each a few ms)
LOOKALIKE_AT_ONCE = 4     # index bodies (~1 MB, a cached part) and digit lookups at once
RETRY_AFTER_S = 1         # what a refused request is told to wait


def bounded(route: Route, limit: int) -> Route:
    """The same route, with at most `limit` of its requests at work at once (the rest: 503, Retry-After)."""
    return Route(route.path, route.endpoint, methods=route.methods, name=route.name,
                 middleware=[Middleware(Bounded, limit=limit, retry_after=RETRY_AFTER_S)])


def app_routes(services: Services) -> list[Route]:
    routes = [weights_route(services.registry),
              bounded(unit_route(services.network), UNIT_AT_ONCE),
              bounded(activations_route(services.network), ACTIVATIONS_AT_ONCE),
              *(bounded(r, LOOKALIKE_AT_ONCE) for r in lookalike_routes(services.registry, services.insight))]
    if services.options.train_enabled:
        routes.append(queue_status_route(services.training))
    return routes
