"""The model store's memory (issue 31): RSS while N runs are each picked, explained and exported.

N run checkpoints are written directly (the shipped model's weights, each slightly perturbed, each with
an owner), then, as the app does for a visitor who picks a run and draws: the model is loaded
(ModelStore.get), its weights body made (GET /mnist/weights), a test digit explained with its look-alikes
(the feature index of the 60,000 training digits, built by the store's background worker, as the page
waits for it), optionally the unit index built (--units: the network view's top digits, ~10 s each), and
the checkpoint copied for download. Printed: RSS after the first run, after all N, the growth, what the
store holds, the download folder's files; then every run deleted by its owner and RSS again.

Two policies, each in a fresh process of this same command: "bounded" (the store's defaults) and
"unbounded" (no bound: what the earlier registry and caches did, keeping every model and its parts).

    python benchmarks/model_store.py [--runs 60] [--data-dir ../shared/mnist] [--units]
"""
from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks.common import rss_mb  # noqa: E402
from mnist_core.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from mnist_core.insight import InsightService, inspect_image28  # noqa: E402
from mnist_core.store import ModelStore  # noqa: E402
from mnist_core.units import UnitService  # noqa: E402
from mnist_web.weights import WeightsEndpoint  # noqa: E402

SHIPPED = ROOT / "checkpoints" / "mnist_cnn.pt"


def write_runs(runs_dir: Path, n: int) -> list[str]:
    """n checkpoints: the shipped weights plus a little noise (distinct models), owner 'owner<i>'."""
    ck = load_checkpoint(SHIPPED)
    gen = torch.Generator().manual_seed(0)
    for i in range(n):
        state = {k: (v + 0.01 * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v)
                 for k, v in ck["state_dict"].items()}
        save_checkpoint({**ck, "state_dict": state, "owner": f"owner{i:02d}"}, runs_dir / f"run-{i:02d}.pt")
    return [f"runs/run-{i:02d}.pt" for i in range(n)]


def use(store: ModelStore, insight: InsightService, units: UnitService | None, key: str, digit) -> None:
    """Pick, explain (waiting for the background worker's index, as the page does), export."""
    predictor = store.get(key)
    WeightsEndpoint(store).body(key)
    while insight.ready_index(predictor) is None:
        time.sleep(0.02)
    assert inspect_image28(insight, predictor, digit).lookalikes
    if units is not None:
        while units.ready(predictor) is None:
            time.sleep(0.05)
    store.export(key)


def one_policy(policy: str, n: int, data_dir: str, with_units: bool) -> dict:
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="mnist-store-bench-"))
    keys = write_runs(tmp / "runs", n)
    bounds = {} if policy == "bounded" else {"max_models": 10**9, "max_bytes": 2**62, "max_downloads": 10**9}
    store = ModelStore(SHIPPED, tmp / "runs", downloads=tmp / "downloads", **bounds)
    insight = InsightService(data_dir, parts=store)
    units = UnitService(insight, pause=0.0) if with_units else None
    digit = insight.data()[1].images[0].numpy() / 255.0
    t0 = time.perf_counter()
    use(store, insight, units, keys[0], digit)
    gc.collect()
    first = rss_mb()
    for key in keys[1:]:
        use(store, insight, units, key, digit)
    gc.collect()
    after, held = rss_mb(), store.held()
    downloads = len(list((tmp / "downloads").iterdir()))
    seconds = time.perf_counter() - t0
    for i, key in enumerate(keys):
        store.delete(key, f"owner{i:02d}")
    gc.collect()
    return {"policy": policy, "runs": n, "first_mb": first, "after_mb": after, "held_models": held[0],
            "held_mb": held[1] / 2**20, "downloads": downloads, "seconds": seconds,
            "after_delete_mb": rss_mb(), "held_after_delete": store.held()[0],
            "downloads_after_delete": len(list((tmp / "downloads").iterdir()))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=60)
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "mnist"))
    ap.add_argument("--units", action="store_true", help="also build each model's unit index (~10 s each)")
    ap.add_argument("--policy", choices=["bounded", "unbounded"], help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.policy:
        print(json.dumps(one_policy(a.policy, a.runs, a.data_dir, a.units)))
        return
    print(f"{a.runs} runs, each picked, explained{', unit-indexed' if a.units else ''} and exported; "
          f"store defaults: {ModelStore.__init__.__defaults__[1:4]} (max models, bytes, downloads)")
    for policy in ("bounded", "unbounded"):
        cmd = [sys.executable, __file__, "--policy", policy, "--runs", str(a.runs), "--data-dir", a.data_dir]
        out = subprocess.run(cmd + (["--units"] if a.units else []), capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{policy:>9}: RSS after the first run {r['first_mb']:.0f} MB, after {r['runs']} runs "
              f"{r['after_mb']:.0f} MB (growth {r['after_mb'] - r['first_mb']:+.0f} MB); the store holds "
              f"{r['held_models']} models, {r['held_mb']:.1f} MB; {r['downloads']} download copies; "
              f"{r['seconds']:.0f} s. After deleting every run: RSS {r['after_delete_mb']:.0f} MB, "
              f"{r['held_after_delete']} models held, {r['downloads_after_delete']} download copies")


if __name__ == "__main__":
    main()
