"""The app's services, built once per server from its options, before any UI exists.

`build_services(options)` makes what the tabs and routes share: the model store (mnist_core/store.py:
every model a visitor can pick, bounded caches of what is derived from each; `registry`, and `runs`
its view as the run catalog), insight (look-alikes, evidence, mistakes), the unit
index service (the network view's "what each unit looks for"), the training service (a fair queue
run by a backend), and the event handlers over them (mnist_web/handlers.py, network.py, teaching.py). No Gradio
component is made here: demo.py lays out the page from these, mnist_web/routes.py serves the plain
routes from them.
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from mnist_core.cli import RUNS_DIR, SHIPPED_CHECKPOINT
from mnist_core.config import TrainingBudget
from mnist_core.insight import InsightService
from mnist_core.registry import CANVAS_KEY, SHIPPED_KEY, ModelRegistry
from mnist_core.runs import RunStore
from mnist_core.units import UnitService

from .backends import LocalBackend
from .handlers import DrawHandlers, TrainHandlers
from .network import NetworkHandlers
from .teaching import TeachHandlers
from .training_service import MAX_WAITING, TrainingService

QUEUE_MAX = 64        # requests waiting past this get Gradio's "queue is full" instead of waiting forever
CACHE_MAX_AGE = 3600  # seconds: Gradio's cached files (uploads, outputs) older than this are deleted
# Training runs at once: measured on the 2-core CPU (benchmarks/RESULTS.md, "Training slots"), threads per
# run = cores / slots. More slots (or a Ray cluster) with --train-slots / $MNIST_TRAIN_SLOTS, --ray.
TRAIN_SLOTS = 2
_BUDGET = TrainingBudget()
RUNS_PER_OWNER, MAX_RUNS, MAX_RUN_BYTES = _BUDGET.keep_runs, _BUDGET.max_runs, _BUDGET.max_run_bytes
# A script must not fill the queue from one machine; a class behind one NAT address shares this bound
# (docs/hosting.md: raise it, or name the proxy with --trusted-proxy, for a class on one network).
JOBS_PER_ADDRESS = 10


@dataclass(frozen=True)
class AppOptions:
    """What a server is started with (demo.py's flags, or a test's arguments)."""
    checkpoint: Path = SHIPPED_CHECKPOINT   # the recipe's model (MNIST only)
    canvas: Path | None = None              # the model trained for the canvas, the drawing default when given
                                            # (demo.py's command line gives checkpoints/mnist_canvas.pt)
    runs_dir: Path = RUNS_DIR               # where the Train tab saves its runs
    data_dir: str | None = None             # MNIST root (None: $MNIST_DATA_DIR, else ./data)
    download: bool = True                   # may MNIST be downloaded when missing
    train_enabled: bool = True              # False: read-only, no Train tab, no /train or /stop
    max_queue: int = QUEUE_MAX              # Gradio's queue size
    cache_max_age: int = CACHE_MAX_AGE      # seconds Gradio keeps its cached files
    train_backend: object = None            # where training jobs run (None: LocalBackend(TRAIN_SLOTS))
    train_queue: int = MAX_WAITING          # training jobs that may wait
    runs_per_owner: int = RUNS_PER_OWNER    # each visitor keeps their newest this many runs
    max_runs: int = MAX_RUNS                # the runs folder keeps at most this many in all ...
    max_run_bytes: int = MAX_RUN_BYTES      # ... and this many bytes (mnist_core/pruning.py)
    jobs_per_address: int = JOBS_PER_ADDRESS   # training jobs one client address may have waiting or running
    trusted_proxies: frozenset = frozenset()   # reverse proxies whose X-Forwarded-For is believed
    hide_others: bool = False               # the Train tab lists only the visitor's own runs
    teach: dict | None = None               # "Teach the model my handwriting": TeachConfig values (tests: fewer steps)


@dataclass
class Services:
    """Everything the tabs and routes share; one per server."""
    options: AppOptions
    registry: ModelRegistry
    runs: RunStore
    insight: InsightService
    training: TrainingService
    draw: DrawHandlers          # the Draw and Inspect tabs' events
    network: NetworkHandlers    # the network view's /activations and /unit
    train: TrainHandlers        # the Train tab's events
    default_key: str | None     # the model a new visitor starts with (the canvas model, else the recipe's)
    teach: TeachHandlers | None = None   # /teach and My digits as a data set (None: read-only, no training)

    def close(self) -> None:
        """Stops every training job, ends the backend's worker processes, removes the download copies."""
        self.training.close()
        shutil.rmtree(self.registry.downloads, ignore_errors=True)


def default_model(registry: ModelRegistry) -> str | None:
    """The canvas model when it is there (it reads drawings best), else the recipe's, else any."""
    keys = [k for _, k in registry.choices()]
    return next((k for k in (CANVAS_KEY, SHIPPED_KEY) if k in keys), keys[0] if keys else None)


def build_services(options: AppOptions) -> Services:
    checkpoint, runs_dir = Path(options.checkpoint), Path(options.runs_dir)
    export_dir = Path(tempfile.mkdtemp(prefix="mnist-downloads-"))   # copies offered for download
    registry = ModelRegistry(checkpoint, runs_dir, downloads=export_dir,   # the model store (store.py), bounded
                             canvas=options.canvas)
    backend = options.train_backend
    if backend is None and options.train_enabled:
        backend = LocalBackend(TRAIN_SLOTS)
    budget = replace(TrainingBudget(), keep_runs=options.runs_per_owner, max_runs=options.max_runs,
                     max_run_bytes=options.max_run_bytes)
    training = TrainingService(runs_dir, data_dir=options.data_dir, download=options.download, backend=backend,
                               max_waiting=options.train_queue, budget=budget,
                               per_address=options.jobs_per_address, teach=options.teach)
    training.runner.store = registry   # pruning lists the runs through it and it forgets what pruned runs held
    runs = RunStore(registry)   # the same store, seen as the run catalog
    insight = InsightService(options.data_dir, parts=registry)   # MNIST read once; features, mistakes: the store's
    default_key = default_model(registry)
    return Services(options=options, registry=registry, runs=runs, insight=insight, training=training,
                    draw=DrawHandlers(registry, insight, checkpoint),
                    network=NetworkHandlers(registry, UnitService(insight)),
                    train=TrainHandlers(training, runs, registry, export_dir, options.trusted_proxies,
                                        options.hide_others),
                    default_key=default_key,
                    teach=TeachHandlers(training, registry, export_dir, options.trusted_proxies, default_key))
