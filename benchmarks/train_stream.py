"""Measure the /train stream as a browser receives it: bytes per update on the wire (Gradio's SSE
messages, diffs included) and how many train-curve points arrive before the first epoch's row.

    python benchmarks/train_stream.py URL [epochs] [samples]      (an app started with demo.py)

Prints one line per figure; the baseline is today's behaviour on the same run: points only per epoch
(0 before the first row) and a full table each update.
"""
import itertools
import json
import os
import sys
import time

import httpx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tests.server import queue_stream  # noqa: E402

url = sys.argv[1].rstrip("/")
epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 1
samples = int(sys.argv[3]) if len(sys.argv) > 3 else 60000
cfg = httpx.get(f"{url}/config").json()
dep = next(d for d in cfg["dependencies"] if d.get("api_name") == "train")
names = {c["id"]: c.get("props", {}).get("elem_id") for c in cfg["components"]}
out_names = [names.get(i) or str(i) for i in dep["outputs"]]
data = [epochs, 0.02, 0.9, 64, 6, 0.1, 7.0, 0.0, 1, samples, "cpu", None, [], 0.0][:len(dep["inputs"])]
sizes, values, first_row_points, t0 = [], None, None, time.time()
updates_before_row, point_times = 0, []
for size, _kind, values in queue_stream(url, "train", data, timeout=None):
    sizes.append(size)
    curves = values[out_names.index("train-curves")] if "train-curves" in out_names else None  # None: baseline
    table = values[out_names.index("history")]
    rows = len(table["data"]) if isinstance(table, dict) else 0
    if rows == 0:
        updates_before_row += 1
        if curves:
            n = len(curves.get("train", []))
            if n and (not point_times or n > point_times[-1][1]):
                point_times.append((time.time() - t0, n))
    elif first_row_points is None:
        first_row_points = len(curves.get("train", [])) if curves else 0
status = values[out_names.index("train-status")]
print(f"final status: {status[status.index('status-text') + 13:][:150]}")
print(f"updates: {len(sizes)}; bytes per update: median {sorted(sizes)[len(sizes) // 2]}, max {max(sizes)}, "
      f"max excluding the final message {max(sizes[:-1]) if len(sizes) > 1 else 0}; final (full values) {sizes[-1]}")
print(f"train points before the first epoch's row: {first_row_points} (in {updates_before_row} updates)")
if point_times:
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(point_times)]
    print(f"first point after {point_times[0][0]:.1f} s, last before the row after {point_times[-1][0]:.1f} s; "
          f"gaps between new points: median {sorted(gaps)[len(gaps) // 2]:.2f} s, max {max(gaps or [0]):.2f} s")
full = json.dumps(values)
print(f"size of all outputs in full at the end: {len(full)} bytes")
