"""The app's server side around the UI: its command line (flags and their environment variables), the
`App` (the page, its services and its plain routes, assembled by `assemble`), and launch(), which starts
Gradio with the app's CSS, its own routes and its bounds (mnist_web/webguard.py). demo.py lays out the
page and calls these."""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
from starlette.middleware import Middleware
from starlette.routing import Route

from mnist_core.cli import CANVAS_CHECKPOINT, RUNS_DIR, SHIPPED_CHECKPOINT
from mnist_core.data import resolve_data_dir

from .assets import APP_CSS, APP_HEAD
from .backends import BackendError, make_backend
from .routes import app_routes
from .services import (
    CACHE_MAX_AGE,
    JOBS_PER_ADDRESS,
    MAX_RUNS,
    MAX_WAITING,
    QUEUE_MAX,
    RUNS_PER_OWNER,
    TRAIN_SLOTS,
    AppOptions,
    Services,
    build_services,
)
from .webguard import LOOPBACK_NAMES, BoundedStream, Guard, hosting_address, is_loopback, parse_hosts

UPLOAD_LIMIT = 10_000_000   # bytes per uploaded file (Gradio answers 413 past it); drawings are ~10-100 KB
BODY_LIMIT = 1_000_000      # bytes per request body elsewhere: a stroke update is a few KB, at most ~300 KB


@dataclass
class App:
    """One server's app: the page (Gradio Blocks), the services behind it, and its plain routes."""
    blocks: gr.Blocks
    services: Services
    routes: list[Route] = field(default_factory=list)

    def close(self, keep_backend: bool = False) -> None:
        """The server closed, its training jobs stopped and (unless keep_backend: a backend someone else
        owns, such as a Ray cluster of a test fixture) its worker processes ended."""
        self.blocks.close()
        self.services.training.stop() if keep_backend else self.services.close()


def assemble(options: AppOptions, layout: Callable[[Services], gr.Blocks]) -> App:
    """The services from the options, the page laid out over them, the routes beside it."""
    services = build_services(options)
    return App(layout(services), services, app_routes(services))


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="MNIST draw-and-train demo")
    p.add_argument("--host", default=None,
                   help="interface to listen on (default: $GRADIO_SERVER_NAME, else 127.0.0.1: localhost only)")
    p.add_argument("--port", type=int, default=None, help="port (default: $GRADIO_SERVER_PORT, else 7860)")
    p.add_argument("--checkpoint", default=str(SHIPPED_CHECKPOINT), help="the recipe's model (MNIST only)")
    p.add_argument("--canvas-checkpoint", default=str(CANVAS_CHECKPOINT),
                   help="the model trained for the canvas, the drawing default ('' for none)")
    p.add_argument("--runs-dir", default=str(RUNS_DIR), help="where the Train tab saves its checkpoints")
    p.add_argument("--data-dir", default=None, help="MNIST root (default: $MNIST_DATA_DIR, else ./data)")
    p.add_argument("--no-download", action="store_true", help="never download MNIST")
    p.add_argument("--no-train", action="store_true", default=env_flag("MNIST_NO_TRAIN"),
                   help="read-only: no Train tab, no /train or /stop API (also $MNIST_NO_TRAIN=1)")
    p.add_argument("--max-queue", type=int, default=int(os.environ.get("MNIST_MAX_QUEUE", QUEUE_MAX)),
                   help=f"requests that may wait; more get 'queue is full' (default {QUEUE_MAX}, $MNIST_MAX_QUEUE)")
    p.add_argument("--allowed-hosts", default=os.environ.get("MNIST_ALLOWED_HOSTS"),
                   help="comma-separated host names accepted in the Host header ('*' = any); default: "
                        "localhost names when listening on a loopback address, else any ($MNIST_ALLOWED_HOSTS)")
    p.add_argument("--cache-max-age", type=int, default=int(os.environ.get("MNIST_CACHE_MAX_AGE", CACHE_MAX_AGE)),
                   help=f"seconds before Gradio's cached files are deleted (default {CACHE_MAX_AGE})")
    p.add_argument("--share", action="store_true", help="create a public gradio.live link (off by default)")
    p.add_argument("--train-slots", type=int, default=env_int("MNIST_TRAIN_SLOTS", TRAIN_SLOTS),
                   help=f"training runs at once on this machine, each in its own worker process (default "
                        f"{TRAIN_SLOTS}, $MNIST_TRAIN_SLOTS)")
    p.add_argument("--train-threads", type=int, default=env_int("MNIST_TRAIN_THREADS", 0),
                   help="threads per run (default: CPU cores / slots, $MNIST_TRAIN_THREADS; on Ray: CPUs per task)")
    p.add_argument("--train-queue", type=int, default=env_int("MNIST_TRAIN_QUEUE", MAX_WAITING),
                   help=f"training jobs that may wait; more get 'the queue is full' (default {MAX_WAITING}, "
                        f"$MNIST_TRAIN_QUEUE)")
    p.add_argument("--runs-per-owner", type=int, default=env_int("MNIST_RUNS_PER_OWNER", RUNS_PER_OWNER),
                   help=f"each visitor keeps their newest this many runs (default {RUNS_PER_OWNER}, "
                        f"$MNIST_RUNS_PER_OWNER)")
    p.add_argument("--max-runs", type=int, default=env_int("MNIST_MAX_RUNS", MAX_RUNS),
                   help=f"runs kept in all; past it the oldest run of whoever has the most goes, never anyone's "
                        f"only run (default {MAX_RUNS}, $MNIST_MAX_RUNS)")
    p.add_argument("--jobs-per-address", type=int, default=env_int("MNIST_JOBS_PER_ADDRESS", JOBS_PER_ADDRESS),
                   help=f"training jobs one client address may have waiting or running, 0 = no bound (default "
                        f"{JOBS_PER_ADDRESS}, $MNIST_JOBS_PER_ADDRESS)")
    p.add_argument("--trusted-proxy", default=os.environ.get("MNIST_TRUSTED_PROXY", ""), metavar="ADDRESSES",
                   help="comma-separated addresses of your reverse proxies: their X-Forwarded-For names the client "
                        "($MNIST_TRUSTED_PROXY; default none: the forwarded header is ignored)")
    p.add_argument("--hide-others-runs", action="store_true", default=env_flag("MNIST_HIDE_OTHERS_RUNS"),
                   help="the Train tab lists only the visitor's own runs ($MNIST_HIDE_OTHERS_RUNS=1)")
    p.add_argument("--ray", default=os.environ.get("MNIST_RAY_ADDRESS") or None, metavar="ADDRESS",
                   help="run training jobs on this Ray cluster (host:port of `ray start --head`, or 'auto'; "
                        "$MNIST_RAY_ADDRESS); needs `pip install -r requirements-ray.txt`")
    a = p.parse_args(argv)
    if a.max_queue < 1 or a.cache_max_age < 1:
        p.error("--max-queue and --cache-max-age must be at least 1")
    if a.train_slots < 1 or a.train_threads < 0 or a.train_queue < 0:
        p.error("--train-slots must be at least 1, --train-threads and --train-queue at least 0")
    if a.runs_per_owner < 1 or a.max_runs < 1 or a.jobs_per_address < 0:
        p.error("--runs-per-owner and --max-runs must be at least 1, --jobs-per-address at least 0")
    return a


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"demo.py: ${name} must be a whole number, got {raw!r}") from None


def launch(app: App, host: str | None = None, port: int | None = None, share: bool = False,
           allowed_hosts: list[str] | None = None, **kw):
    """Start the server with the app's CSS (Gradio 6 takes CSS at launch) and its bounds: Host check
    (localhost names when bound to loopback, else `allowed_hosts` if given), cross-site writes refused,
    request bodies and uploads capped, no analytics, no run history, no monitoring endpoint; plus the
    app's own routes (mnist_web/routes.py)."""
    host, port = hosting_address(host, port)
    if allowed_hosts:
        hosts = [*allowed_hosts, *LOOPBACK_NAMES]
    else:
        hosts = list(LOOPBACK_NAMES) if is_loopback(host) and not share else None
    guard = Middleware(Guard, allowed_hosts=hosts, body_limit=BODY_LIMIT, upload_limit=UPLOAD_LIMIT + 100_000)
    kw.setdefault("max_file_size", UPLOAD_LIMIT)
    # every waiting or running /train stream holds a worker thread while it waits for its next update
    trainer = app.services.training
    kw.setdefault("max_threads", 40 + trainer.max_waiting + trainer.status()["slots"])
    return app.blocks.launch(server_name=host, server_port=port, share=share, css=APP_CSS, head=APP_HEAD,
                             run_history=False, enable_monitoring=False,
                             app_kwargs={"middleware": [guard], "routes": list(app.routes)}, **kw)


def options_from_args(a: argparse.Namespace) -> AppOptions:
    """The parsed flags as the app's options; the training backend made here (an unreachable Ray
    cluster: one line and no server, never a silent fallback)."""
    backend = None
    if not a.no_train:
        try:
            backend = make_backend(a.train_slots, a.train_threads or None, a.ray)
        except BackendError as exc:
            raise SystemExit(f"demo.py: {exc}") from None
        print(f"Training: {backend.describe()}; up to {a.train_queue} more may wait.")
    return AppOptions(checkpoint=Path(a.checkpoint), canvas=Path(a.canvas_checkpoint) if a.canvas_checkpoint else None,
                      runs_dir=Path(a.runs_dir),
                      data_dir=str(resolve_data_dir(a.data_dir)), download=not a.no_download,
                      train_enabled=not a.no_train, max_queue=a.max_queue, cache_max_age=a.cache_max_age,
                      train_backend=backend, train_queue=a.train_queue, runs_per_owner=a.runs_per_owner,
                      max_runs=a.max_runs, jobs_per_address=a.jobs_per_address,
                      trusted_proxies=frozenset(h.strip() for h in a.trusted_proxy.split(",") if h.strip()),
                      hide_others=a.hide_others_runs)


def main(layout: Callable[[Services], gr.Blocks], argv: list[str] | None = None) -> None:
    """demo.py's command line: parse the flags, bound the logs, assemble the app, serve it."""
    a = parse_args(argv)
    # One request must not be able to flood the log: every write is cut short, with a budget per minute.
    sys.stderr = BoundedStream(sys.stderr)
    sys.stdout = BoundedStream(sys.stdout)
    try:
        host, port = hosting_address(a.host, a.port)
    except ValueError as exc:
        raise SystemExit(f"demo.py: {exc}") from None
    app = assemble(options_from_args(a), layout)
    launch(app, host=host, port=port, share=a.share,
           allowed_hosts=parse_hosts(a.allowed_hosts) if a.allowed_hosts else None)
