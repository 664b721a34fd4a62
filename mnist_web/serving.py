"""The app's server side around the UI: its command line (flags and their environment variables) and
launch(), which starts Gradio with the app's CSS, its own routes and its bounds (mnist_web/webguard.py).
demo.py builds the UI and calls these."""
from __future__ import annotations

import argparse
import os

import gradio as gr
from starlette.middleware import Middleware

from mnist_core.cli import RUNS_DIR, SHIPPED_CHECKPOINT

from .insight_views import CSS as INSIGHT_CSS
from .training_service import MAX_WAITING
from .views import CSS
from .webguard import LOOPBACK_NAMES, Guard, hosting_address, is_loopback

QUEUE_MAX = 64        # requests waiting past this get Gradio's "queue is full" instead of waiting forever
UPLOAD_LIMIT = 10_000_000   # bytes per uploaded file (Gradio answers 413 past it); drawings are ~10-100 KB
BODY_LIMIT = 1_000_000      # bytes per request body elsewhere: a stroke update is a few KB, at most ~300 KB
CACHE_MAX_AGE = 3600        # seconds: Gradio's cached files (uploads, outputs) older than this are deleted
# Training runs at once: measured on the 2-core CPU (benchmarks/RESULTS.md, "Training slots"), threads per
# run = cores / slots. More slots (or a Ray cluster) with --train-slots / $MNIST_TRAIN_SLOTS, --ray.
TRAIN_SLOTS = 2


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="MNIST draw-and-train demo")
    p.add_argument("--host", default=None,
                   help="interface to listen on (default: $GRADIO_SERVER_NAME, else 127.0.0.1: localhost only)")
    p.add_argument("--port", type=int, default=None, help="port (default: $GRADIO_SERVER_PORT, else 7860)")
    p.add_argument("--checkpoint", default=str(SHIPPED_CHECKPOINT), help="the default model")
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
    p.add_argument("--ray", default=os.environ.get("MNIST_RAY_ADDRESS") or None, metavar="ADDRESS",
                   help="run training jobs on this Ray cluster (host:port of `ray start --head`, or 'auto'; "
                        "$MNIST_RAY_ADDRESS); needs `pip install -r requirements-ray.txt`")
    a = p.parse_args(argv)
    if a.max_queue < 1 or a.cache_max_age < 1:
        p.error("--max-queue and --cache-max-age must be at least 1")
    if a.train_slots < 1 or a.train_threads < 0 or a.train_queue < 0:
        p.error("--train-slots must be at least 1, --train-threads and --train-queue at least 0")
    return a


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"demo.py: ${name} must be a whole number, got {raw!r}") from None


def launch(demo: gr.Blocks, host: str | None = None, port: int | None = None, share: bool = False,
           allowed_hosts: list[str] | None = None, **kw):
    """Start the server with the app's CSS (Gradio 6 takes CSS at launch) and its bounds: Host check
    (localhost names when bound to loopback, else `allowed_hosts` if given), cross-site writes refused,
    request bodies and uploads capped, no analytics, no run history, no monitoring endpoint; plus the
    app's own routes (GET /mnist/weights: the chosen model's weights for the page's live label)."""
    host, port = hosting_address(host, port)
    if allowed_hosts:
        hosts = [*allowed_hosts, *LOOPBACK_NAMES]
    else:
        hosts = list(LOOPBACK_NAMES) if is_loopback(host) and not share else None
    guard = Middleware(Guard, allowed_hosts=hosts, body_limit=BODY_LIMIT, upload_limit=UPLOAD_LIMIT + 100_000)
    kw.setdefault("max_file_size", UPLOAD_LIMIT)
    # every waiting or running /train stream holds a worker thread while it waits for its next update
    trainer = getattr(demo, "mnist_trainer", None)
    kw.setdefault("max_threads", 40 + (trainer.max_waiting + trainer.status()["slots"] if trainer else 0))
    return demo.launch(server_name=host, server_port=port, share=share, css=CSS + INSIGHT_CSS, run_history=False,
                       enable_monitoring=False,
                       app_kwargs={"middleware": [guard], "routes": list(getattr(demo, "mnist_routes", []))}, **kw)
