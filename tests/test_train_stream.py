"""The Train tab's API as a second program uses it (gradio_client): the /train stream's shape and size,
comparing runs, a run's results, download and delete. The stream's shape is documented in docs/api.md."""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.conftest import need

try:
    from gradio_client import Client
except ImportError:  # pragma: no cover
    need(False, "gradio_client is not installed (pip install -r requirements.txt)")

import demo  # noqa: E402
from tests.server import queue_stream, serve  # noqa: E402
from tests.test_app import state_of  # noqa: E402

PARAMS = ("epochs", "lr", "momentum", "batch_size", "step_size", "gamma", "rotation", "dropout", "seed", "samples",
          "device")
DEFAULTS = dict(epochs=2, lr=0.02, momentum=0.9, batch_size=4, step_size=6, gamma=0.1, rotation=7, dropout=0.0,
                seed=1, samples=1200, device="cpu")
# /train streams, in this order: status HTML, per-epoch table, loss chart, accuracy chart, the Draw tab's
# model picker, the curves (JSON), the Results run picker, the Compare selection, the run's view (filters,
# guesses on 20 test digits, per-digit accuracy per epoch). Start/Stop button states are not API outputs.
STATUS, TABLE, LOSS, ACC, PICKER, CURVES, RUN_PICK, COMPARE, LOOK = range(9)
PAYLOAD_LIMIT = 20_000   # bytes per streamed update (issue 12)


def args(**over):
    v = {**DEFAULTS, **over}
    return [v[k] for k in PARAMS]


@pytest.fixture(scope="module")
def app(tmp_path_factory, synthetic_root, shipped_checkpoint):
    runs = tmp_path_factory.mktemp("runs")
    with serve(demo.build_app(shipped_checkpoint, runs, data_dir=str(synthetic_root), download=False)) as url:
        yield {"url": url, "runs": runs, "client": Client(url, verbose=False)}


def raw_stream(url: str, data: list) -> list[tuple[int, list]]:
    """Run /train over Gradio's own protocol; (bytes on the wire, outputs after applying diffs) per message."""
    return [(n, values) for n, _, values in queue_stream(url, "train", data + [None, [], 0.0])]


def test_stream_shape_curves_within_the_epoch_and_small_updates(app):
    c = app["client"]
    job = c.submit(*args(), api_name="/train")          # 300 batches per epoch: a train point every 30
    job.result(timeout=300)
    outs = job.outputs()
    assert all(len(o) == 9 for o in outs), [len(o) for o in outs]
    states = [state_of(o[STATUS]) for o in outs]
    assert states[0] == "loading" and states[-1] == "finished" and "running" in states
    before_row = [o for o in outs if not o[TABLE]["data"]]
    assert max(len(o[CURVES]["train"]) for o in before_row) >= 5, "train points must arrive within the first epoch"
    final = outs[-1][CURVES]
    assert final["epochs"] == 2 and len(final["train"]) == 20 and [p[0] for p in final["test"]] == [1.0, 2.0]
    xs = [p[0] for p in final["train"]]
    assert xs == sorted(xs) and xs[:2] == [0.1, 0.2] and xs[-1] == 2.0
    assert [p[2] for p in final["test"]] == [r[5] for r in outs[-1][TABLE]["data"]]
    for chart, series in ((outs[-1][LOSS], "train (this run)"), (outs[-1][ACC], "test (this run)")):
        assert f"data-series='{series}'" in chart
        assert re.findall(r"class='xtick'[^>]*>([^<]*)<", chart) == ["0", "1", "2"]   # whole epochs only
    new_key = outs[-1][RUN_PICK]["value"]
    assert new_key.startswith("runs/") and (app["runs"] / new_key.split("/", 1)[1]).is_file()
    assert new_key in outs[-1][COMPARE]["value"]
    assert "after 2 epochs" in outs[-1][STATUS]
    mid = [o[STATUS] for o in outs if state_of(o[STATUS]) == "running" and "images/s" in o[STATUS]]
    assert mid and any(" left" in s for s in mid)                     # ETA of the whole run and images/s
    # the run's view: empty while loading, then the latest snapshot, the digits kept, a row per epoch
    assert outs[0][LOOK] == {}
    looks = [o[LOOK] for o in outs if o[LOOK]]
    assert all(len(v["guesses"]) == 20 and len(v["labels"]) == 20 for v in looks)
    assert looks[0]["digits"] and not any("digits" in v for v in looks[1:])   # the probe digits go once
    assert [v["conv1"]["shape"] for v in looks[:1]] == [[8, 1, 3, 3]] and looks[0]["conv2"]["shape"] == [16, 8, 3, 3]
    first_epoch = [v for v in looks if v["epoch"] == 1 and not v["per_class"]]
    assert len({v["conv1"]["q"] for v in first_epoch}) >= 3, "the filters must move within the first epoch"
    assert len(outs[-1][LOOK]["per_class"]) == 2 and all(len(r) == 10 for r in outs[-1][LOOK]["per_class"])


def test_each_update_on_the_wire_is_small(app):
    msgs = raw_stream(app["url"], args(epochs=3))
    sizes = [n for n, _ in msgs]
    assert len(msgs) > 10 and state_of(msgs[-1][1][0]) == "finished"
    assert max(sizes) < PAYLOAD_LIMIT, sizes
    print(f"\n{len(sizes)} updates, max {max(sizes)} bytes, median {sorted(sizes)[len(sizes) // 2]}")


@pytest.mark.parametrize("over,words", [
    (dict(epochs=2.5), "epochs must be a whole number"), (dict(epochs=True), "epochs must be a whole number"),
    (dict(samples=None), "max_train_samples must be a whole number"), (dict(seed=None), "got nothing"),
    (dict(batch_size=1, samples=60000), "optimizer steps"), (dict(epochs=50, samples=60000, batch_size=64), "limit"),
])
def test_bad_or_too_big_runs_are_refused_up_front(app, over, words):
    before = sorted(p.name for p in app["runs"].iterdir())
    status = app["client"].predict(*args(**over), api_name="/train")[STATUS]
    assert state_of(status) == "refused" and words in status, status
    assert sorted(p.name for p in app["runs"].iterdir()) == before


def test_compare_results_download_and_delete(app, shipped_checkpoint):
    c = app["client"]
    first = c.predict(*args(epochs=1, batch_size=32), api_name="/train")
    second = c.predict(*args(epochs=1, batch_size=32, lr=0.05), api_name="/train")
    k1, k2 = first[RUN_PICK]["value"], second[RUN_PICK]["value"]
    assert k1 != k2 and state_of(second[STATUS]) == "finished"
    assert k1 not in second[COMPARE]["value"] and k2 in second[COMPARE]["value"]  # each call: a new session
    acc_chart, loss_chart, table = c.predict([k1, k2, "shipped"], api_name="/compare")
    assert acc_chart.count("class='series'") == 3 and "data-series='Recipe model'" in acc_chart
    assert table["headers"][:2] == ["run", "test acc %"] and "lr" in table["headers"]
    assert "momentum" not in table["headers"]                 # only settings that differ
    lr_col = table["headers"].index("lr")
    assert [r[lr_col] for r in table["data"]] == [0.02, 0.05, 0.02]

    bars, confusion, path, note = c.predict(k2, api_name="/show_run")
    assert [row[0] for row in bars["data"]] == [str(d) for d in range(10)]
    assert confusion.count("<tr>") == 11 and "data-empty='false'" in confusion
    saved = app["runs"] / k2.split("/", 1)[1]
    assert Path(path).read_bytes() == saved.read_bytes()
    *_, shipped_path, note = c.predict("shipped", api_name="/show_run")
    assert Path(shipped_path).read_bytes() == shipped_checkpoint.read_bytes() and "never deleted" in note

    before = shipped_checkpoint.read_bytes()
    msg, *_ = c.predict("shipped", [], api_name="/delete_run")
    assert msg.startswith("Not deleted") and shipped_checkpoint.read_bytes() == before
    msg, *_ = c.predict("runs/../../etc/passwd", [], api_name="/delete_run")
    assert msg.startswith("Not deleted")
    msg, run_pick, compare, _ = c.predict(k2, [k1, k2], api_name="/delete_run")
    assert msg == f"Deleted {saved.name}." and not saved.exists()
    assert compare["value"] == [k1] and run_pick["value"] is None
    assert k2 not in [k for _, k in compare["choices"]]


def test_real_mnist_epoch_streams_points_before_its_row(real_mnist, shipped_checkpoint, tmp_path):
    """Issue 12's target: on a 1-epoch, 60,000-sample run, >= 5 plotted points before the first row."""
    with serve(demo.build_app(shipped_checkpoint, tmp_path, data_dir=str(real_mnist), download=False)) as url:
        t0 = time.time()
        msgs = raw_stream(url, args(epochs=1, samples=60000, batch_size=64))
        before = [v for _, v in msgs if not v[1]["data"]]
        points = max(len(v[5]["train"]) for v in before)
        assert points >= 5, points
        assert max(n for n, _ in msgs) < PAYLOAD_LIMIT
        print(f"\n{points} points before the first row; {len(msgs)} updates, max {max(n for n, _ in msgs)} bytes, "
              f"{time.time() - t0:.0f} s")


def test_the_last_message_of_the_longest_run_stays_under_the_budget():
    """Gradio's last message of a stream repeats every output in full: for the recipe's 15 epochs at the
    point cap, three runs overlaid and the run's view at its largest (15 per-digit rows), it must still
    fit PAYLOAD_LIMIT (the pickers, buttons and the message's envelope: under 1 KB more)."""
    import json

    import torch

    from mnist_core.model import Net
    from mnist_core.watch import Watcher
    from mnist_web.handlers import TrainHandlers
    from mnist_web.train_views import MAX_TRAIN_POINTS
    from mnist_web.training_service import TrainUpdate

    hist = [{"epoch": e, "epochs": 15, "lr": 0.02, "train_loss": 0.061234, "train_accuracy": 98.1234,
             "test_loss": 0.021234, "test_accuracy": 99.4123, "seconds": 9.87654} for e in range(1, 16)]
    train = [(round(15 * (i + 1) / MAX_TRAIN_POINTS, 4), 0.0512345 + i / 1e5, 98.51234 + i / 1e3)
             for i in range(MAX_TRAIN_POINTS)]
    test = [(float(e), 0.0212345, 99.41234) for e in range(1, 16)]
    look = Watcher(torch.randint(0, 256, (40, 28, 28), dtype=torch.uint8), torch.arange(40) % 10,
                   torch.device("cpu")).snapshot(Net(), 15, 938, 938, [99.123] * 10)
    look.pop("digits")                                   # sent once, early (tests above)
    look["per_class"] = [[99.12] * 10 for _ in range(15)]
    u = TrainUpdate("finished", "Finished: test accuracy 99.41% after 15 epochs. Saved as run-20261202-101520-99.41.pt;"
                    " pick it in the Draw tab.", hist, 938, 938, None, "run-20261202-101520-99.41.pt", train, test,
                    6123.0, 1.0, 15, look=look)
    earlier = [(f"run-20261126-1015{i}0-99.40", hist) for i in range(3)]
    status, table, loss, acc, curves, view = TrainHandlers.outputs(u, earlier)
    sizes = [len(json.dumps(v, separators=(",", ":")))           # compact, as on the wire
             for v in (status, table.to_dict("split"), loss, acc, curves, view)]
    assert sum(sizes) < PAYLOAD_LIMIT - 1_000, sizes
