"""GPU: wall time of the full default run, our fast path vs our previous paths and the DataLoader pipeline.

    python benchmarks/gpu_train.py --data-dir ../shared/mnist [--previous-epochs 15] [--eager-epochs 1] \
        [--baseline-epochs 1] [--repeat]
    python benchmarks/gpu_train.py --data-dir DIR --only fast --repeat [--cudnn-benchmark 1] [--tf32 0] \
        [--compile default|max-autotune-no-cudagraphs]
    python benchmarks/gpu_train.py --data-dir DIR --seeds 1-20 --paths fast previous --jobs 4 --out FILE.jsonl

Timing mode prints one line per epoch and one summary line per pipeline, all on the same GPU in one
process, the fast path (the default `python -m mnist_core train` on CUDA) first, so that its figure
includes the process's one-time cuDNN/cuBLAS start-up. A pipeline run for fewer than 15 epochs is
extrapolated (its epochs after the first x the missing epochs, added to what was measured) and the
output says so. Each figure is end to end: from the IDX files on the host to the 15th evaluation.

--only times one path first in a fresh process (cold), then again (--repeat, warm); run it once per
path for a fair cold comparison.

Seed mode trains the full default recipe for each seed with each path (parallel worker processes
on the one GPU; timing is not the point there) and appends one JSON line per run to --out.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing as mp
import os
import statistics
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# GPU_BENCH_DRY_RUN=1 runs the script's code on the CPU (tiny and slow: a check of the script, no figures)
DRY = os.environ.get("GPU_BENCH_DRY_RUN") == "1"
DEVICE = "cpu" if DRY else "cuda"
if DRY:
    torch.cuda.synchronize = lambda *a: None
    torch.cuda.get_device_name = lambda *a: "CPU (dry run)"

from mnist_core import gpu_fast
from mnist_core import train as train_mod
from mnist_core.config import TrainConfig
from mnist_core.data import load_mnist
from mnist_core.train import Trainer

PATHS = {   # name: (cuda_graphs, GPU_FAST_PATH)
    "fast": (True, True),          # the default: gpu_fast.FastLoop
    "previous": (True, False),     # one CUDA graph per step, batches made per step (before issue 15)
    "eager": (False, True),        # no graphs: the same code as the CPU path
}


@dataclasses.dataclass(frozen=True)
class Knobs:
    """The fast path's settings a run may change (None: gpu_fast's default). Applied once per process,
    before the Trainer is built; seed workers get the same object."""
    steps_per_graph: int | None = None
    channels_last: bool | None = None
    cudnn_benchmark: bool | None = None
    tf32: bool | None = None
    compile_mode: str | None = None   # torch.compile mode: "default" or "max-autotune-no-cudagraphs"

    @classmethod
    def from_args(cls, a) -> Knobs:
        flag = lambda v: None if v is None else bool(v)  # noqa: E731  (0/1 on the command line)
        return cls(a.steps_per_graph, flag(a.channels_last), flag(a.cudnn_benchmark), flag(a.tf32), a.compile)

    def apply(self) -> None:
        if self.compile_mode:   # static shapes: the 64-image step and each evaluation chunk get their own kernels
            mode = {} if self.compile_mode == "default" else {"mode": self.compile_mode}
            gpu_fast.COMPILE = {"dynamic": False, **mode}
        if self.tf32 is not None:
            gpu_fast.ALLOW_TF32 = self.tf32
        if self.cudnn_benchmark is not None:
            gpu_fast.CUDNN_BENCHMARK = self.cudnn_benchmark
        if self.steps_per_graph:
            gpu_fast.STEPS_PER_GRAPH = self.steps_per_graph
        if self.channels_last is not None:
            gpu_fast.CHANNELS_LAST = self.channels_last


def knobs_in_effect() -> dict:
    """What the fast path runs with now (recorded in every JSON line)."""
    return {"tf32": gpu_fast.ALLOW_TF32, "cudnn_benchmark": gpu_fast.CUDNN_BENCHMARK,
            "steps_per_graph": gpu_fast.STEPS_PER_GRAPH, "channels_last": gpu_fast.CHANNELS_LAST,
            "compile": gpu_fast.COMPILE}


def run_path(path: str, data_dir: str | None, epochs: int = 15, seed: int = 1, verbose: bool = True) -> dict:
    graphs, fast = PATHS[path]
    epochs = min(epochs, 2) if DRY else epochs
    train_mod.GPU_FAST_PATH = fast
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    train, test = load_mnist(data_dir, download=False)
    t_load = time.perf_counter() - t0
    trainer = Trainer(TrainConfig(device=DEVICE, cuda_graphs=graphs, epochs=epochs, seed=seed,
                                  max_train_samples=640 if DRY else None), train, test)
    t_setup = time.perf_counter() - t0
    history = []
    for r in trainer.run():
        history.append(r.as_dict())
        if verbose:
            print(f"  {path} epoch {r.epoch:2d}: train loss {r.train_loss:.4f}, test {r.test_accuracy:.2f}% "
                  f"in {r.seconds:.3f} s", flush=True)
    torch.cuda.synchronize()
    total = time.perf_counter() - t0
    fast_loop = trainer.fast
    return {"path": path, "seed": seed, "epochs": epochs, "total_s": total, "load_s": t_load, "setup_s": t_setup,
            "epoch_s": [h["seconds"] for h in history], "final": history[-1]["test_accuracy"],
            "best": max(h["test_accuracy"] for h in history), "history": history,
            "graphs": (fast_loop is not None and bool(fast_loop.graphs) and fast_loop.graph_error is None)
            or trainer.graphed is not None,
            "graph_error": fast_loop.graph_error if fast_loop is not None else None,
            "steps_per_graph": fast_loop.k if fast_loop is not None else None,
            "channels_last": gpu_fast.CHANNELS_LAST if fast_loop is not None else None,
            "setup_seconds": dict(fast_loop.setup_seconds) if fast_loop is not None else None}


def summary_line(r: dict, full_epochs: int = 15) -> str:
    e = r["epoch_s"]
    steady = statistics.median(e[1:]) if len(e) > 1 else e[0]
    first_cost = r["setup_s"] + e[0]
    if r["epochs"] == full_epochs:
        total, how = r["total_s"], "measured"
    else:
        total = r["total_s"] + steady * (full_epochs - r["epochs"])
        how = f"{r['epochs']} epoch(s) measured, the other {full_epochs - r['epochs']} at {steady:.3f} s"
    return (f"{r['path']}: {full_epochs} epochs in {total:.2f} s ({how}; load + train + evaluations), "
            f"first epoch {first_cost:.2f} s incl. load {r['load_s']:.2f} s and setup, then {steady:.3f} s/epoch "
            f"(median), final test {r['final']:.2f}%, graphs {r['graphs']}"
            + (f", {r['steps_per_graph']} steps/graph, channels_last {r['channels_last']}, "
               f"cudnn.benchmark {gpu_fast.CUDNN_BENCHMARK}, TF32 {gpu_fast.ALLOW_TF32}, compile {gpu_fast.COMPILE}"
               if r["path"] == "fast" else ""))


def timing(a) -> None:
    print(f"GPU: {torch.cuda.get_device_name(0)}; torch {torch.__version__}; cpus {os.cpu_count()}", flush=True)
    if a.only:
        return only(a)
    results = [run_path("fast", a.data_dir)]
    print(summary_line(results[-1]), flush=True)
    print("  fast path one-time costs: " + ", ".join(f"{k} {v:.3f} s" for k, v in results[-1]["setup_seconds"].items())
          if results[-1]["setup_seconds"] else "  (no fast loop)", flush=True)
    if a.previous_epochs:
        results.append(run_path("previous", a.data_dir, a.previous_epochs))
        print(summary_line(results[-1]), flush=True)
    if a.eager_epochs:
        results.append(run_path("eager", a.data_dir, a.eager_epochs))
        print(summary_line(results[-1]), flush=True)
    if a.repeat:
        r = run_path("fast", a.data_dir)
        r["path"] = "fast"
        results.append(r)
        print("again, in the warm process: " + summary_line(r), flush=True)
    if a.service:
        train_tab(a)
    if a.baseline_epochs:
        results.append(dataloader_baseline(a))
    # Like with like: the first run of the process pays its CUDA start-up, the later ones do not, so
    # the others are compared with the fast path's warm run when there is one (--repeat).
    warm = [r for r in results[1:] if r["path"] == "fast"]
    fast_total, which = (warm[0]["total_s"], "warm") if warm else (results[0]["total_s"], "cold (first in the process)")
    for r in results[1:]:
        if r["path"] != "fast":
            e = r["epoch_s"]
            steady = statistics.median(e[1:]) if len(e) > 1 else e[0]
            total = r["total_s"] + steady * (15 - r["epochs"])
            print(f"fast path ({which}, {fast_total:.2f} s) vs {r['path']} (later in the same process, {total:.2f} s): "
                  f"{total / fast_total:.2f}x", flush=True)
    if a.out:
        with open(a.out, "w") as f:
            for r in results:
                f.write(json.dumps(r) + "\n")


def only(a) -> None:
    """One path, first in a fresh process (cold: its figure includes the process's CUDA start-up)."""
    results = []
    if a.profile_setup:
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            results.append(run_path(a.only, a.data_dir, epochs=1, verbose=False))
        print(f"cold 1-epoch run under the CPU profiler: setup {results[-1]['setup_s']:.2f} s, "
              f"epoch {results[-1]['epoch_s'][0]:.2f} s; top CPU ops:", flush=True)
        print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=12, max_name_column_width=50), flush=True)
    for i in range(0 if a.profile_setup and not a.repeat else 1 + int(a.repeat)):
        r = run_path(a.only, a.data_dir)
        results.append(r)
        print(("cold: " if i == 0 and not a.profile_setup else "warm process: ") + summary_line(r), flush=True)
        if r.get("setup_seconds"):
            print("  one-time costs: " + ", ".join(f"{k} {v:.3f} s" for k, v in r["setup_seconds"].items()), flush=True)
    if a.out:
        with open(a.out, "a") as f:
            for r in results:
                r["knobs"] = knobs_in_effect()
                r["label"] = a.label
                f.write(json.dumps(r) + "\n")


def train_tab(a) -> None:
    """The Train tab's run: TrainingService with the default values (device auto), as the web UI streams it."""
    import tempfile
    try:
        from mnist_web.training_service import TrainingService
        train_mod.GPU_FAST_PATH = True
        with tempfile.TemporaryDirectory() as tmp:
            svc = TrainingService(tmp, data_dir=a.data_dir, download=False)
            t0 = time.perf_counter()
            running, batches, last = 0, set(), None
            for u in svc.stream({}):
                if u.state == "running":
                    running += 1
                    batches.add((len(u.history), u.batch))
                last = u
            total = time.perf_counter() - t0
        print(f"Train tab (TrainingService.stream, default values, incl. saving): {total:.2f} s, {running} progress "
              f"updates ({running / total:.1f}/s, {len(batches)} distinct positions), final: {last.state}: "
              f"{last.message}", flush=True)
    except Exception as exc:   # the service is another module's; report, do not fail the benchmark
        print(f"Train tab run failed: {type(exc).__name__}: {exc}", flush=True)


def dataloader_baseline(a) -> dict:
    from seed_pipeline import seed_loaders, seed_test, seed_train_steps

    from mnist_core.model import Net
    cfg = TrainConfig(device=DEVICE)
    dev = torch.device("cuda")
    torch.manual_seed(cfg.seed)
    model = Net(cfg.dropout).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    sched = torch.optim.lr_scheduler.StepLR(opt, cfg.step_size, cfg.gamma)
    t0 = time.perf_counter()
    tl, vl = seed_loaders(a.data_dir, cfg.batch_size, a.workers, pin_memory=True)
    setup = time.perf_counter() - t0
    secs, acc = [], 0.0
    for e in range(1, a.baseline_epochs + 1):
        te = time.perf_counter()
        seed_train_steps(model, tl, opt, dev)
        sched.step()
        acc = seed_test(model, vl, dev)
        secs.append(time.perf_counter() - te)
        print(f"  dataloader epoch {e:2d}: test {acc:.2f}% in {secs[-1]:.2f} s", flush=True)
    r = {"path": "dataloader", "epochs": a.baseline_epochs, "total_s": time.perf_counter() - t0, "load_s": setup,
         "setup_s": setup, "epoch_s": secs, "final": acc, "graphs": False}
    print(summary_line(r), flush=True)
    return r


def _seed_worker(path: str, seed: int, data_dir: str | None, knobs: Knobs) -> dict:
    knobs.apply()   # a spawned worker starts from gpu_fast's defaults
    r = run_path(path, data_dir, 15, seed, verbose=False)
    r.pop("epoch_s")
    r["knobs"] = knobs_in_effect()
    return r


def parse_seeds(spec: list[str]) -> list[int]:
    out = []
    for s in spec:
        if "-" in s:
            lo, hi = s.split("-")
            out += list(range(int(lo), int(hi) + 1))
        else:
            out.append(int(s))
    return out


def seeds(a) -> None:
    todo = [(p, s) for s in parse_seeds(a.seeds) for p in a.paths]
    deadline = time.time() + a.max_seconds if a.max_seconds else None
    ctx = mp.get_context("spawn")
    done = []
    with ctx.Pool(a.jobs, maxtasksperchild=None) as pool:
        pending = [pool.apply_async(_seed_worker, (p, s, a.data_dir, a.knobs)) for p, s in todo]
        for (p, s), fut in zip(todo, pending, strict=True):
            left = None if deadline is None else max(1.0, deadline - time.time())
            try:
                r = fut.get(timeout=left)
            except mp.TimeoutError:
                print(f"time limit reached: {len(done)} of {len(todo)} runs finished", flush=True)
                pool.terminate()
                break
            done.append(r)
            print(f"  {p} seed {s}: final {r['final']:.2f}%, best {r['best']:.2f}%, {r['total_s']:.1f} s", flush=True)
            if a.out:
                with open(a.out, "a") as f:
                    f.write(json.dumps(r) + "\n")
        print("| path | runs | final min / mean / max (%) | std | final >= 99.40 | best-epoch mean (%) |")
        print("|---|---|---|---|---|---|")
        for p in a.paths:
            finals = [r["final"] for r in done if r["path"] == p]
            if finals:
                sd = statistics.stdev(finals) if len(finals) > 1 else 0.0
                print(f"| {p} | {len(finals)} | {min(finals):.2f} / {statistics.mean(finals):.3f} / {max(finals):.2f} "
                      f"| {sd:.3f} | {sum(f >= 99.40 for f in finals)}/{len(finals)} "
                      f"| {statistics.mean(r['best'] for r in done if r['path'] == p):.3f} |", flush=True)
        # Leave without the pool's teardown: on the H100 a finished pool of CUDA workers hung there.
        sys.stdout.flush()
        os._exit(0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--previous-epochs", type=int, default=15,
                   help="epochs of the previous (graph per step) path; 0 skips")
    p.add_argument("--eager-epochs", type=int, default=1, help="epochs of the eager path; 0 skips")
    p.add_argument("--baseline-epochs", type=int, default=1, help="epochs of the DataLoader pipeline; 0 skips")
    p.add_argument("--repeat", action="store_true", help="run the fast path again at the end, in the warm process")
    p.add_argument("--service", action="store_true", help="also time the Train tab's TrainingService run")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers of the baseline")
    p.add_argument("--steps-per-graph", type=int, default=None, help=f"fast path (default {gpu_fast.STEPS_PER_GRAPH})")
    p.add_argument("--channels-last", type=int, choices=(0, 1), default=None,
                   help=f"fast path (default {int(gpu_fast.CHANNELS_LAST)})")
    p.add_argument("--cudnn-benchmark", type=int, choices=(0, 1), default=None,
                   help=f"fast path (default {int(gpu_fast.CUDNN_BENCHMARK)})")
    p.add_argument("--tf32", type=int, choices=(0, 1), default=None,
                   help="fast path: TF32 convolutions (default: PyTorch's)")
    p.add_argument("--compile", default=None, choices=("default", "max-autotune-no-cudagraphs"),
                   help="fast path: torch.compile the model in the loop with this mode (default: not compiled)")
    p.add_argument("--only", choices=list(PATHS), default=None,
                   help="time this one path only, cold then (--repeat) warm")
    p.add_argument("--profile-setup", action="store_true", help="with --only: CPU-profile a cold 1-epoch run first")
    p.add_argument("--seeds", nargs="*", help="seed mode: seeds such as 1-20 or 1 2 3")
    p.add_argument("--paths", nargs="*", default=["fast", "previous"], choices=list(PATHS))
    p.add_argument("--jobs", type=int, default=4, help="seed mode: worker processes sharing the GPU")
    p.add_argument("--max-seconds", type=float, default=None, help="seed mode: stop waiting after this long")
    p.add_argument("--out", default=None, help="JSON lines of every run")
    p.add_argument("--label", default=None,
                   help="with --only: a name stored in each JSON line (one file, many variants)")
    a = p.parse_args()
    if not torch.cuda.is_available() and not DRY:
        sys.exit("no CUDA GPU: this benchmark needs one")
    a.knobs = Knobs.from_args(a)
    a.knobs.apply()
    if a.seeds:
        seeds(a)
    else:
        timing(a)


if __name__ == "__main__":
    main()
