"""Training as a generator of per-epoch records (the CLI shows them with tqdm, the web tab streams them)."""
from __future__ import annotations

import datetime as _dt
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Protocol

import torch
import torch.nn.functional as F

from .batches import TensorBatches
from .checkpoint import FORMAT_VERSION
from .config import MNIST_MEAN, MNIST_STD, ConfigError, TrainConfig
from .data import Split
from .evaluate import evaluate
from .gpu_fast import FastLoop, on_side_stream
from .model import Net
from .redraw import DRAWN_TEST_SEED, drawn, with_drawn

# How often (in batches) the progress callback fires. Reading the running loss forces a device
# sync; every 10 batches keeps a progress bar smooth without slowing a GPU. (On the CUDA fast path it
# fires at most once per graph replay of gpu_fast.STEPS_PER_GRAPH steps.)
PROGRESS_EVERY = 10

# CUDA with cuda_graphs: the fast path of gpu_fast.py (many steps per graph, epoch-wide batch making,
# no per-batch sync). False selects the previous path (one graph per step, batches made per step),
# kept as the reference that benchmarks/gpu_train.py and tests/test_gpu.py compare against.
GPU_FAST_PATH = True


class StopFlag(Protocol):
    def is_set(self) -> bool: ...


@dataclass(frozen=True)
class EpochMetrics:
    epoch: int
    epochs: int
    lr: float
    train_loss: float
    train_accuracy: float   # % on the augmented batches, in train mode (dropout on), as seen while learning
    test_loss: float        # mean NLL on the 10,000 test images
    test_accuracy: float    # %
    seconds: float          # wall time of the epoch, evaluation included

    def as_dict(self) -> dict:
        return asdict(self)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but no CUDA GPU is available; use 'cpu' or 'auto'")
    return torch.device(name)


class GraphedStep:
    """The whole training step (forward, loss, backward, SGD update, metric sums) as one CUDA graph.

    The network is tiny, so on a GPU each step is bound by the CPU launching ~100 small kernels, not
    by the GPU running them; replaying a captured graph launches them all at once. One graph is
    captured per learning rate (the lr is a constant inside a captured SGD step, and StepLR gives
    only a few values). Follows the "whole network capture" recipe of the PyTorch CUDA-graph docs:
    a few real steps on a side stream first, grads set to None before capture, static input buffers.
    """

    WARMUP_STEPS = 3

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch_size: int,
                 device: torch.device) -> None:
        self.model, self.optimizer = model, optimizer
        self.x = torch.zeros(batch_size, 1, 28, 28, device=device)
        self.y = torch.zeros(batch_size, dtype=torch.long, device=device)
        self.loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), dtype=torch.long, device=device)
        self.graphs: dict[float, torch.cuda.CUDAGraph] = {}
        self.warmed = 0

    def warmup_step(self, step) -> None:
        """Run an ordinary (eager) step on a side stream, as graph capture requires before it."""
        on_side_stream(step)
        self.warmed += 1

    def replay(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> None:
        self.x.copy_(x)
        self.y.copy_(y)
        graph = self.graphs.get(lr)
        if graph is None:
            graph = self.graphs[lr] = self._capture()
        graph.replay()

    def _capture(self) -> torch.cuda.CUDAGraph:
        self.optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = self.model(self.x)
            loss = F.nll_loss(out, self.y)
            loss.backward()
            self.optimizer.step()
            self.loss_sum += loss.detach() * self.x.shape[0]
            self.correct += (out.argmax(1) == self.y).sum()
        return graph


class Trainer:
    """One training run. Iterate `run()` for EpochMetrics; afterwards `checkpoint()` holds the result.

    stop:     anything with is_set() (threading.Event); checked before every batch, so a run ends
              within one batch of being asked. The unfinished epoch is discarded.
    on_batch: called as on_batch(done, total, running_loss, running_accuracy) every `progress_every`
              batches and after the last; on the CUDA fast path at most once per graph replay (every
              gpu_fast.STEPS_PER_GRAPH steps, many times a second), where stop is checked too.
    """

    def __init__(self, cfg: TrainConfig, train: Split, test: Split, *, stop: StopFlag | None = None,
                 on_batch: Callable[[int, int, float, float], None] | None = None,
                 progress_every: int | None = None, progress_bars: bool = False) -> None:
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.stop = stop
        self.on_batch = on_batch
        self.progress_every = max(1, int(PROGRESS_EVERY if progress_every is None else progress_every))
        # First N samples: a deterministic subset (MNIST's order is already mixed by writer), plus their
        # re-drawn twins when cfg.drawn (traced and rasterised once, then read from the project's cache).
        train, self.twins = with_drawn(train, cfg.drawn, cfg.max_train_samples, cfg.drawn_variants,
                                       progress=progress_bars)
        if len(train) == 0 or len(test) == 0:
            raise ConfigError("the training and test sets must not be empty")
        torch.manual_seed(cfg.seed)  # model init and dropout masks
        layout = torch.channels_last if cfg.channels_last and self.device.type == "cpu" else torch.contiguous_format
        self.model = Net(dropout=cfg.dropout).to(self.device, memory_format=layout)
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed)  # order + angles
        self.train_batches = TensorBatches(train.images.to(self.device), train.labels.to(self.device),
                                           cfg.batch_size, rotation=cfg.rotation, generator=self.generator,
                                           memory_format=layout, interpolation=cfg.rotation_interpolation)
        self.test_batches = TensorBatches(test.images.to(self.device), test.labels.to(self.device),
                                          cfg.eval_batch_size, shuffle=False, memory_format=layout)
        # A run with re-drawn twins is also measured on the drawn test set (the test digits re-drawn).
        twin = drawn(test, DRAWN_TEST_SEED, progress=progress_bars)[0] if cfg.drawn else None
        self.drawn_batches = (TensorBatches(twin.images.to(self.device), twin.labels.to(self.device),
                                            cfg.eval_batch_size, shuffle=False, memory_format=layout)
                              if twin is not None else None)
        self.drawn_metrics: dict | None = None
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
        # On CUDA with cuda_graphs the fast loop trains (with its own fused SGD whose lr is a device
        # tensor); self.optimizer and self.scheduler then only keep the schedule's float lr values.
        use_graphs = cfg.cuda_graphs and self.device.type == "cuda"
        self.fast = (FastLoop(self.model, self.train_batches.images, self.train_batches.labels,
                              self.test_batches.images, self.test_batches.labels, batch_size=cfg.batch_size,
                              lr=cfg.lr, momentum=cfg.momentum, rotation=cfg.rotation,
                              interpolation=cfg.rotation_interpolation, eval_batch_size=cfg.eval_batch_size,
                              generator=self.generator)
                     if use_graphs and GPU_FAST_PATH else None)
        self.graphed = (GraphedStep(self.model, self.optimizer, cfg.batch_size, self.device)
                        if use_graphs and self.fast is None else None)
        self.history: list[dict] = []
        self.test_metrics: dict | None = None
        self.best: dict | None = None
        self.last_weights: dict | None = None   # the weights the last finished epoch's metrics belong to
        self.stopped = False

    def _stop_requested(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def run(self) -> Iterator[EpochMetrics]:
        total = len(self.train_batches)
        graphed = self.graphed
        for epoch in range(1, self.cfg.epochs + 1):
            t0 = time.perf_counter()
            self._swap_twins(epoch)
            lr = self.optimizer.param_groups[0]["lr"]
            if self.fast is not None:
                if not self._fast_epoch(lr, total):
                    self.stopped = True
                    return
                if epoch % self.cfg.step_size == 0:   # StepLR's arithmetic, on the float lr it reports
                    self.optimizer.param_groups[0]["lr"] = lr * self.cfg.gamma
                metrics = self.fast.evaluate()
                ls, cs = self.fast.sums()
                yield self._finish_epoch(epoch, lr, ls, cs, self.fast.n, metrics, t0)
                continue
            self.model.train()
            loss_sum = torch.zeros((), device=self.device)
            correct = torch.zeros((), dtype=torch.long, device=self.device)
            if graphed is not None:
                graphed.loss_sum.zero_()
                graphed.correct.zero_()
            seen = 0
            for i, (x, y) in enumerate(self.train_batches, 1):
                if self._stop_requested():
                    self.stopped = True
                    return

                def step(x: torch.Tensor = x, y: torch.Tensor = y) -> None:   # this iteration's batch
                    nonlocal loss_sum, correct
                    out = self.model(x)
                    loss = F.nll_loss(out, y)
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    self.optimizer.step()
                    loss_sum = loss_sum + loss.detach() * len(y)
                    correct = correct + (out.argmax(1) == y).sum()

                if graphed is None or len(y) != self.cfg.batch_size:
                    step()  # CPU, or the last, smaller batch of an epoch
                elif graphed.warmed < GraphedStep.WARMUP_STEPS:
                    graphed.warmup_step(step)
                else:
                    try:
                        graphed.replay(x, y, lr)
                    except RuntimeError as exc:  # capture unsupported here: carry on without graphs
                        warnings.warn(f"CUDA graph capture failed ({exc}); training without CUDA graphs", stacklevel=2)
                        graphed = self.graphed = None
                        step()
                seen += len(y)
                if self.on_batch is not None and (i % self.progress_every == 0 or i == total):
                    ls, cs = self._sums(loss_sum, correct, graphed)
                    self.on_batch(i, total, ls / seen, 100.0 * cs / seen)
            self.scheduler.step()
            metrics = evaluate(self.model, self.test_batches)
            ls, cs = self._sums(loss_sum, correct, graphed)
            yield self._finish_epoch(epoch, lr, ls, cs, seen, metrics, t0)

    def _swap_twins(self, epoch: int) -> None:
        """With several style sets of re-drawn twins, epoch e trains on set (e - 1) mod their number (in
        place: the tail of the training images)."""
        if len(self.twins) > 1:
            twins = self.twins[(epoch - 1) % len(self.twins)]
            self.train_batches.images[-len(twins):].copy_(twins.unsqueeze(1).to(self.device))

    def _fast_epoch(self, lr: float, total: int) -> bool:
        self.fast.set_lr(lr)
        on_batch = self.on_batch

        def progress(done: int, seen: int, loss_sum: float, correct: int) -> None:
            on_batch(done, total, loss_sum / seen, 100.0 * correct / seen)
        return self.fast.train_epoch(self._stop_requested, progress if on_batch is not None else None,
                                     self.progress_every)

    def _finish_epoch(self, epoch: int, lr: float, ls: float, cs: int, seen: int, metrics: dict,
                      t0: float) -> EpochMetrics:
        record = EpochMetrics(epoch, self.cfg.epochs, lr, ls / seen, 100.0 * cs / seen,
                              metrics["loss"], metrics["accuracy"], time.perf_counter() - t0)
        self.history.append(record.as_dict())
        self.test_metrics = metrics
        if self.drawn_batches is not None:
            self.drawn_metrics = evaluate(self.model, self.drawn_batches)
        self.last_weights = self._weights()
        if self.best is None or record.test_accuracy > self.best["test_accuracy"]:
            self.best = {"epoch": epoch, "test_accuracy": record.test_accuracy, "state_dict": self.last_weights}
        return record

    def _weights(self) -> dict:
        """A detached CPU copy of the weights in the standard layout (loadable anywhere)."""
        return {k: v.detach().cpu().clone(memory_format=torch.contiguous_format)
                for k, v in self.model.state_dict().items()}

    @staticmethod
    def _sums(loss_sum, correct, graphed) -> tuple[float, int]:
        if graphed is not None:
            loss_sum, correct = loss_sum + graphed.loss_sum, correct + graphed.correct
        return loss_sum.item(), int(correct.item())

    @property
    def epochs_completed(self) -> int:
        return len(self.history)

    def checkpoint(self) -> dict:
        """The run as a checkpoint dict: the last finished epoch's weights, plus the best epoch's."""
        if not self.history:
            raise RuntimeError("no epoch has finished yet: there is nothing to save")
        status = "complete" if self.epochs_completed == self.cfg.epochs else "stopped"
        return {
            "format_version": FORMAT_VERSION,
            "model_args": self.model.model_args(),
            "state_dict": self.last_weights,   # the last *finished* epoch's, even when stopped mid-epoch
            "normalization": {"mean": MNIST_MEAN, "std": MNIST_STD},
            "config": self.cfg.to_dict(),
            "history": list(self.history),
            "test_metrics": self.test_metrics,
            **({"drawn_metrics": self.drawn_metrics} if self.drawn_metrics is not None else {}),
            "status": status,
            "epochs_completed": self.epochs_completed,
            "best": self.best,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "torch_version": str(torch.__version__),
        }
