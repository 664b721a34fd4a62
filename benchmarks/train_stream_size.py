"""The /train stream's update sizes on the wire (issue 26's budget: the largest update under 20 KB), for
a whole run of the recipe on the real MNIST: the charts at their 400-point cap, a per-digit row for
every epoch, the run's view (filters, guesses, the probe digits once) about 10 times an epoch.

    python benchmarks/train_stream_size.py [--data-dir ../shared/mnist] [--epochs 15] [--samples 60000]

Prints the number of updates, the largest and the median message (bytes of the SSE line, as the page
receives it; after the first, Gradio sends each output's diff) and the size of each output's last value
(the last message repeats every value in full).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import demo  # noqa: E402
from tests.server import queue_stream, serve  # noqa: E402

# the page's outputs of /train, in order (the API hides the two button states)
OUTPUTS = ("status", "table", "loss chart", "accuracy chart", "model picker", "curves", "start button",
           "stop button", "run picker", "compare", "run view")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data-dir", default=os.environ.get("MNIST_DATA_DIR", str(ROOT.parent / "shared" / "mnist")))
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--samples", type=int, default=60_000)
    a = p.parse_args()
    values = [a.epochs, 0.02, 0.9, 64, 6, 0.1, 7.0, 0.05, 1, a.samples, "cpu", None, [], 0.0]
    sizes, last = [], None
    with serve(demo.build_app(demo.SHIPPED_CHECKPOINT, Path(tempfile.mkdtemp()), data_dir=a.data_dir,
                              download=False)) as url:
        import httpx

        t0 = time.time()
        for n, _, out in queue_stream(url, "train", values, timeout=3600, config=httpx.get(url + "config").json()):
            sizes.append(n)
            last = out
    print(f"{a.epochs} epochs on {a.samples:,} samples: {len(sizes)} updates in {time.time() - t0:.0f} s; "
          f"largest {max(sizes):,} bytes, median {int(statistics.median(sizes)):,}, last (full values) {sizes[-1]:,}")
    print("the last update, per output (bytes of JSON): " + ", ".join(
        f"{name} {len(json.dumps(v)):,}" for name, v in zip(OUTPUTS, last, strict=True)))


if __name__ == "__main__":
    main()
