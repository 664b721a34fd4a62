"""GPU: where an epoch's time goes (torch.profiler), for the fast path and the previous/eager paths.

    python benchmarks/gpu_profile.py --data-dir ../shared/mnist [--samples 12800] [--paths fast previous eager]
        [--out-dir DIR] [--variants]

For each path: a Trainer on the first --samples training images; epoch 1 warms up (captures), epoch 2
runs under the profiler, epoch 3 runs unprofiled for the wall time. Prints per training step
(the epoch's evaluation of the 10,000 test images included): kernels launched, GPU busy time (sum of
kernel durations), wall time, and the GPU time by kernel family; --out-dir gets each path's top-25
kernel and CPU-op tables. --variants also times the fast path's knobs (steps per graph, NHWC,
cudnn.benchmark) on full-size 3-epoch runs.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

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

PATHS = {"fast": (True, True), "previous": (True, False), "eager": (False, True)}
FAMILIES = [   # (family, regex on the kernel name), first match wins
    ("batch norm", r"batch_norm|batchnorm|bn_fw|bn_bw|welford"),
    ("conv (cuDNN/GEMM)", r"conv|cudnn|xmma|gemm|sm\d\d_|implicit|winograd|fft|dgrad|wgrad|nchw|nhwc"),
    ("SGD update", r"sgd|multi_tensor|foreach"),
    ("pooling", r"pool"),
    ("loss / softmax / argmax", r"softmax|nll|argmax|max_|reduce_kernel.*arg"),
    ("rotation / gather (data)", r"grid_sampler|affine|index|gather|randperm|sort|radix|philox|uniform|random"),
    ("reductions", r"reduce|sum"),
    ("elementwise / copies", r"elementwise|vectorized|copy|fill|threshold|cat|unrolled"),
]


def family(name: str) -> str:
    low = name.lower()
    for fam, rx in FAMILIES:
        if re.search(rx, low):
            return fam
    return "other"


def make_trainer(path: str, data, samples: int | None, epochs: int) -> Trainer:
    graphs, fast = PATHS[path]
    train_mod.GPU_FAST_PATH = fast
    cfg = TrainConfig(device=DEVICE, cuda_graphs=graphs, epochs=epochs, max_train_samples=samples)
    return Trainer(cfg, *data)


def profile_path(path: str, data, samples: int, out_dir: str | None) -> dict:
    trainer = make_trainer(path, data, samples, 3)
    it = trainer.run()
    next(it)                      # epoch 1: warm-up, captures
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        next(it)
        torch.cuda.synchronize()
    t = time.perf_counter()
    r3 = next(it)                 # epoch 3, unprofiled
    torch.cuda.synchronize()
    wall3 = time.perf_counter() - t
    steps = len(trainer.train_batches)
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    busy = sum(e.time_range.elapsed_us() for e in kernels)   # microseconds (kernels, memcpy, memset)
    fam = defaultdict(lambda: [0, 0.0])
    by_name = defaultdict(lambda: [0, 0.0])
    for e in kernels:
        f = fam[family(e.name)]
        f[0] += 1
        f[1] += e.time_range.elapsed_us()
        b = by_name[e.name]
        b[0] += 1
        b[1] += e.time_range.elapsed_us()
    if out_dir:
        with open(os.path.join(out_dir, f"gpu_profile_{path}.txt"), "w") as f:
            f.write(f"{path}: {steps} steps + 1 evaluation, profiled epoch 2\n\n")
            f.write("GPU activities by name (count, total us, us/step):\n")
            for name, (c, us) in sorted(by_name.items(), key=lambda kv: -kv[1][1])[:25]:
                f.write(f"{c:8d} {us:12.0f} {us / steps:9.2f}  {name[:150]}\n")
            f.write("\nCPU ops by self CPU time:\n")
            f.write(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=60))
    return {"path": path, "steps": steps, "kernels": len(kernels), "busy_us": busy, "wall3_s": wall3,
            "families": dict(fam), "test_acc": r3.test_accuracy, "epoch2_s": trainer.history[1]["seconds"]}


def report(r: dict) -> None:
    s = r["steps"]
    busy_pct = r["busy_us"] / 1e6 / max(r["wall3_s"], 1e-9) * 100
    print(f"{r['path']}: {r['kernels'] / s:.1f} GPU activities/step, GPU busy {r['busy_us'] / s:.1f} us/step, "
          f"wall {r['wall3_s'] / s * 1e6:.1f} us/step unprofiled (GPU busy {busy_pct:.0f}% "
          f"of wall), {s} steps + 1 evaluation per epoch", flush=True)
    for name, (c, us) in sorted(r["families"].items(), key=lambda kv: -kv[1][1]):
        share = us / max(r["busy_us"], 1e-9) * 100
        print(f"    {name:26s} {c / s:6.1f}/step {us / s:8.1f} us/step ({share:4.1f}%)", flush=True)


def variants(data) -> list[tuple]:
    """Fast-path knobs, each timed on a full-size 3-epoch run: epoch 1 (capture) and the median of epochs 2-3."""
    rows = []
    # cudnn.benchmark last: its algorithm choices stay cached in the process
    for k, cl, cb in [(8, False, False), (32, False, False), (64, False, False), (128, False, False),
                      (32, True, False), (64, True, False), (32, False, True), (32, True, True)]:
        gpu_fast.STEPS_PER_GRAPH, gpu_fast.CHANNELS_LAST, gpu_fast.CUDNN_BENCHMARK = k, cl, cb
        trainer = make_trainer("fast", data, None, 3)
        hist = [r.seconds for r in trainer.run()]
        steady = statistics.median(hist[1:])
        err = getattr(trainer.fast, "graph_error", "no fast loop")
        rows.append((k, cl, cb, hist[0], steady, err))
        print(f"  variant steps/graph {k:3d}, channels_last {cl!s:5}, cudnn.benchmark {cb!s:5}: first epoch "
              f"{hist[0]:.3f} s, then {steady * 1e3:.1f} ms/epoch ({steady / len(trainer.train_batches) * 1e6:.1f} "
              f"us/step incl. evaluation), final {trainer.history[-1]['test_accuracy']:.2f}%, graph error {err}",
              flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--samples", type=int, default=12800, help="training images per profiled epoch")
    p.add_argument("--paths", nargs="*", default=["fast", "previous"], choices=list(PATHS))
    p.add_argument("--out-dir", default=None)
    p.add_argument("--variants", action="store_true")
    a = p.parse_args()
    if not torch.cuda.is_available() and not DRY:
        sys.exit("no CUDA GPU: this benchmark needs one")
    print(f"GPU: {torch.cuda.get_device_name(0)}; torch {torch.__version__}", flush=True)
    data = load_mnist(a.data_dir, download=False)
    defaults = gpu_fast.STEPS_PER_GRAPH, gpu_fast.CHANNELS_LAST, gpu_fast.CUDNN_BENCHMARK
    for path in a.paths:
        report(profile_path(path, data, a.samples, a.out_dir))
    if a.variants:
        variants(data)
        gpu_fast.STEPS_PER_GRAPH, gpu_fast.CHANNELS_LAST, gpu_fast.CUDNN_BENCHMARK = defaults


if __name__ == "__main__":
    main()
