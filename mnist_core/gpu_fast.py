"""The CUDA fast path: one pass makes an epoch's batches, many SGD steps run per CUDA graph, no sync per batch.

With the previous CUDA path (one graph per step, batches made per step, evaluation eager) the GPU
was busy 55% of the wall time of a profiled epoch (benchmarks/gpu_profile.py, H100; 200 steps and
one evaluation); the rest was launches, host work and syncs. This loop removes them:

- the whole epoch's batches are made at once on the device (one permutation, one rotation angle per
  image, nearest sampling, black fill, normalization: the same distribution as TensorBatches gives
  batch by batch, since it *is* TensorBatches with one batch of the whole set);
- `steps_per_graph` consecutive SGD steps (forward, loss, backward, fused SGD update, metric sums)
  are captured as one CUDA graph and replayed down the epoch; the learning rate is a device tensor,
  so one graph serves every epoch of the StepLR schedule;
- loss and accuracy sums stay on the device and are read once per epoch (or when a progress
  callback asks), and the evaluation of the test set is captured as one graph too.

On a machine without CUDA (tests) the same loop runs eagerly (use_graphs=False).

Measured on an H100 (benchmarks/RESULTS.md): the GPU is now busy 91% of that wall time, and a full
epoch takes 0.407 s instead of 0.487 s; what is left is the GPU's own kernel time, ~430 us per step,
about 60% of it cuDNN's convolution kernels (its FP32 weight-gradient kernel alone 25%) and 20% its
batch norm. Going much faster needs faster kernels for these small layers, not less overhead.
"""
from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F

from .batches import TensorBatches
from .evaluate import metrics_from_confusion

STEPS_PER_GRAPH = 32     # SGD steps per captured graph. H100, ms/epoch: 8 -> 408, 32 -> 413, 64 -> 419,
                         # 128 -> 428 (one run each; the full 15-epoch runs with 32 gave 407)
CHANNELS_LAST = False    # NHWC on the GPU: measured slower on an H100 (465 vs 413 ms/epoch at 32 steps/graph)
WARMUP_STEPS = 2         # eager steps (real training steps) before the first capture, as capture requires
# Not measured in a fresh process yet (benchmarks/gpu_train.py --only fast --cudnn-benchmark 1 / --tf32 0):
CUDNN_BENCHMARK = False  # let cuDNN time its algorithms for each conv shape (while this loop runs)
ALLOW_TF32 = None        # None: PyTorch's setting (TF32 convolutions); False: FP32 convolutions in this loop
# Not measured on a GPU yet (benchmarks/gpu_train.py --only fast --compile default): torch.compile's keyword
# arguments for the model's forward (and, through AOTAutograd, backward) in this loop, or None. Inductor can fuse
# each ReLU + BatchNorm pair and the BN counters (~25% of the kernel time measured) into a few Triton kernels;
# the convolutions stay cuDNN's. Compiling costs tens of seconds once per process (less with Inductor's cache).
COMPILE: dict | None = None


Progress = Callable[[int, int, float, int], None]   # (batches done, samples seen, loss sum, correct)


def summarize(loss_sum: float, preds: torch.Tensor, labels: torch.Tensor, num_classes: int = 10) -> dict:
    """evaluate()'s result dict from the summed loss and the predictions (CPU tensors)."""
    if len(labels) == 0:
        raise ValueError("evaluate() got no data")
    confusion = torch.bincount(labels * num_classes + preds,
                               minlength=num_classes * num_classes).reshape(num_classes, num_classes)
    return metrics_from_confusion(loss_sum, confusion)


def on_side_stream(fn: Callable[[], None]) -> None:
    """Run fn (eager CUDA work) on a side stream and wait for it, as graph capture requires for the
    warm-up steps before it (PyTorch's CUDA-graph recipe)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()  # nothing allocated on the side stream may be reused while still in use


class FastLoop:
    """Trains `model` epoch by epoch on device tensors; see the module docstring.

    train_images/test_images: uint8 [N, 28, 28] or [N, 1, 28, 28] on the training device.
    """

    def __init__(self, model: torch.nn.Module, train_images: torch.Tensor, train_labels: torch.Tensor,
                 test_images: torch.Tensor, test_labels: torch.Tensor, *, batch_size: int, lr: float,
                 momentum: float, rotation: float, interpolation: str, eval_batch_size: int,
                 generator: torch.Generator, steps_per_graph: int | None = None,
                 channels_last: bool | None = None, use_graphs: bool | None = None,
                 compile: dict | None = None) -> None:
        self.device = train_labels.device
        cuda = self.device.type == "cuda"
        self.use_graphs = cuda if use_graphs is None else (use_graphs and cuda)
        channels_last = CHANNELS_LAST if channels_last is None else channels_last
        layout = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.to(memory_format=layout)
        compile_kwargs = COMPILE if compile is None else compile
        # what the steps and the evaluation call; the same parameters, train()/eval() still set on self.model
        self.forward = torch.compile(self.model, **compile_kwargs) if compile_kwargs else self.model
        self.batch = batch_size
        self.n = len(train_labels)
        self.full, self.tail = divmod(self.n, batch_size)
        self.total_batches = self.full + (1 if self.tail else 0)
        self.k = max(1, min(steps_per_graph or STEPS_PER_GRAPH, self.full))
        self.epoch_maker = TensorBatches(train_images, train_labels, max(1, self.n), rotation=rotation,
                                         generator=generator, memory_format=layout, interpolation=interpolation)
        self.x_test, self.y_test = next(iter(TensorBatches(test_images, test_labels, len(test_labels),
                                                           shuffle=False, memory_format=layout)))
        self.y_test_cpu = self.y_test.cpu()
        self.eval_chunks = [(a, min(a + eval_batch_size, len(test_labels)))
                            for a in range(0, len(test_labels), eval_batch_size)]
        # The lr is a device tensor on CUDA: a captured fused SGD step reads it at every replay.
        self.lr = torch.tensor(float(lr), device=self.device) if cuda else float(lr)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=self.lr, momentum=momentum,
                                         **({"fused": True} if cuda else {}))
        kb = self.k * batch_size
        self.sx = torch.zeros(kb, 1, 28, 28, device=self.device).contiguous(memory_format=layout)
        self.sy = torch.zeros(kb, dtype=torch.long, device=self.device)
        self.sp = torch.zeros(kb, dtype=torch.long, device=self.device)   # predictions of the staged steps
        self.loss_sum = torch.zeros((), device=self.device)
        self.correct = torch.zeros((), dtype=torch.long, device=self.device)
        self.eval_loss = torch.zeros(len(self.eval_chunks), device=self.device)
        self.eval_pred = torch.zeros(len(test_labels), dtype=torch.long, device=self.device)
        self.graphs: dict[int, torch.cuda.CUDAGraph] = {}
        self.eval_graph = None
        self.eval_warm = False
        self.warmed = 0
        self.graph_error: str | None = None
        self.replays = 0
        self.setup_seconds: dict[str, float] = {}   # one-time costs: warm-up steps, each capture

    # --- public ---
    def set_lr(self, lr: float) -> None:
        if isinstance(self.lr, torch.Tensor):
            self.lr.fill_(lr)
        else:
            self.lr = lr
            for g in self.optimizer.param_groups:
                g["lr"] = lr

    def make_epoch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The epoch's (inputs, labels) in training order: permuted, rotated, normalized."""
        return next(iter(self.epoch_maker))

    def train_epoch(self, stop: Callable[[], bool] | None = None, progress: Progress | None = None,
                    progress_every: int = 10, epoch: tuple[torch.Tensor, torch.Tensor] | None = None) -> bool:
        """One epoch; False if `stop()` became true (checked before every graph replay or step).

        progress(done, seen, loss_sum, correct) is called when `done` passes a multiple of
        progress_every (at most once per replay) and at the end; each call reads the device sums.
        """
        with self._cudnn_flags():
            return self._train_epoch(stop, progress, progress_every, epoch)

    def _cudnn_flags(self):
        """CUDNN_BENCHMARK / ALLOW_TF32 for this loop's kernels (also those its graphs capture)."""
        import contextlib
        b = torch.backends.cudnn
        if CUDNN_BENCHMARK is False and ALLOW_TF32 is None:
            return contextlib.nullcontext()

        @contextlib.contextmanager
        def flags():
            saved = b.benchmark, b.allow_tf32
            b.benchmark = b.benchmark or CUDNN_BENCHMARK
            b.allow_tf32 = b.allow_tf32 if ALLOW_TF32 is None else ALLOW_TF32
            try:
                yield
            finally:
                b.benchmark, b.allow_tf32 = saved
        return flags()

    def _train_epoch(self, stop, progress, progress_every, epoch) -> bool:
        x_all, y_all = epoch if epoch is not None else self.make_epoch()
        B = self.batch
        self.model.train()
        self.loss_sum.zero_()
        self.correct.zero_()
        p, last = 0, 0

        def report(done: int) -> None:
            nonlocal last
            if progress is not None and (done // progress_every > last // progress_every
                                         or done == self.total_batches):
                seen = min(done * B, self.n)
                progress(done, seen, self.loss_sum.item(), int(self.correct.item()))
                last = done

        while p < self.full:
            if stop is not None and stop():
                return False
            if self.warmed < WARMUP_STEPS and self.use_graphs:
                self._warmup_step(x_all[p * B:(p + 1) * B], y_all[p * B:(p + 1) * B])
                p += 1
            else:
                n = self.k if self.full - p >= self.k else 1
                self.sx[:n * B].copy_(x_all[p * B:(p + n) * B])
                self.sy[:n * B].copy_(y_all[p * B:(p + n) * B])
                self._run(n)
                p += n
            report(p)
        if self.tail:
            if stop is not None and stop():
                return False
            self._eager_step(x_all[self.full * B:], y_all[self.full * B:])
            report(self.total_batches)
        return True

    def sums(self) -> tuple[float, int]:
        """(loss sum, correct count) of the epoch so far: one device sync."""
        v = torch.stack([self.loss_sum.double(), self.correct.double()]).tolist()
        return v[0], int(v[1])

    def evaluate(self) -> dict:
        """evaluate()'s dict for the test set; from the second call on, one graph replay and one sync."""
        with self._cudnn_flags():
            return self._evaluate()

    @torch.no_grad()
    def _evaluate(self) -> dict:
        self.model.eval()
        try:
            if self.eval_graph is None and self.eval_warm and self.use_graphs and self.graph_error is None:
                try:
                    t0 = time.perf_counter()
                    self.eval_graph = self._capture(self._eval_body)
                    self.setup_seconds["capture evaluation"] = time.perf_counter() - t0
                except RuntimeError as exc:
                    self._graph_failed(exc)
            if self.eval_graph is not None:
                self.eval_graph.replay()
            elif self.use_graphs and not self.eval_warm:
                t0 = time.perf_counter()
                on_side_stream(self._eval_body)   # the warm-up capture needs; its results count
                self.setup_seconds["first evaluation (eager)"] = time.perf_counter() - t0
            else:
                self._eval_body()
            self.eval_warm = True
            loss = float(self.eval_loss.double().sum().item())
            preds = self.eval_pred.cpu()
        finally:
            self.model.train()
        return summarize(loss, preds, self.y_test_cpu)

    # --- internals ---
    def _step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = self.forward(x)
        loss = F.nll_loss(out, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.loss_sum.add_(loss.detach(), alpha=len(y))
        return out.detach()

    def _eager_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        out = self._step(x, y)
        self.correct.add_((out.argmax(1) == y).sum())

    def _body(self, n: int) -> None:
        """n staged steps; what one graph holds."""
        B = self.batch
        for j in range(n):
            s = slice(j * B, (j + 1) * B)
            torch.argmax(self._step(self.sx[s], self.sy[s]), 1, out=self.sp[s])
        self.correct.add_((self.sp[:n * B] == self.sy[:n * B]).sum())

    def _eval_body(self) -> None:
        with torch.no_grad():
            for j, (a, b) in enumerate(self.eval_chunks):
                out = self.forward(self.x_test[a:b])
                self.eval_loss[j].copy_(F.nll_loss(out, self.y_test[a:b], reduction="sum"))
                torch.argmax(out, 1, out=self.eval_pred[a:b])

    def _warmup_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """An ordinary training step on a side stream, as the capture recipe asks for before capturing."""
        t0 = time.perf_counter()
        on_side_stream(lambda: self._eager_step(x, y))
        self.warmed += 1
        self.setup_seconds[f"warm-up step {self.warmed}"] = time.perf_counter() - t0

    def _run(self, n: int) -> None:
        graph = self.graphs.get(n)
        if graph is None and self.use_graphs and self.graph_error is None:
            try:
                t0 = time.perf_counter()
                self.optimizer.zero_grad(set_to_none=True)
                graph = self.graphs[n] = self._capture(lambda: self._body(n))
                self.setup_seconds[f"capture {n} step(s)"] = time.perf_counter() - t0
            except RuntimeError as exc:
                self._graph_failed(exc)
                graph = None
        if graph is not None:
            graph.replay()
            self.replays += 1
        else:
            self._body(n)

    def _capture(self, fn) -> torch.cuda.CUDAGraph:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fn()
        return graph

    def _graph_failed(self, exc: Exception) -> None:
        self.graph_error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        warnings.warn(f"CUDA graph capture failed ({self.graph_error}); training without CUDA graphs", stacklevel=2)
        self.graphs.clear()
        self.eval_graph = None
        self.optimizer.zero_grad(set_to_none=True)
