"""/teach through gradio_client, as a second program uses it (issue 33): a teach is a queued job like a run
(it waits behind a run on the one slot, then streams loading, running, finished), saved as the caller's
own run "<model> + your handwriting" with the report, listed in the picker; the same on a real local Ray
cluster; refusals (too few drawings of a digit, a bad label, malformed strokes, not JSON) are one line,
start nothing and save nothing. My digits as a zip (/download_digits) and back (/restore_digits).

Fine-tuning here is short (TeachConfig steps=20, renders=120) on the synthetic MNIST fixture: these tests
are about the plumbing; the figures (accuracy on the held-aside drawings, MNIST) are benchmarks/teach.py's.
"""
from __future__ import annotations

import importlib.util
import json
import math
import time
import zipfile

import pytest
from gradio_client import Client, handle_file

import demo
from mnist_core.checkpoint import load_checkpoint
from mnist_web.backends import LocalBackend
from mnist_web.owners import OWNER_HEADER, owner_id, record_of
from tests.conftest import need
from tests.server import launched, serve
from tests.test_app import start_long_run, state_of

HAVE_RAY = importlib.util.find_spec("ray") is not None
if HAVE_RAY:
    from tests.test_ray_backend import cluster  # noqa: F401  (the real local Ray cluster, 2 CPUs: a fixture)

QUICK = {"steps": 20, "renders": 120}
TOKEN = "teach-test-owner-token-0123456789"


def circle(cx, cy, rx, ry, n=24):
    return [[round(cx + rx * math.sin(2 * math.pi * i / n), 1), round(cy - ry * math.cos(2 * math.pi * i / n), 1)]
            for i in range(n + 1)]


def strokes(digit: int, k: int) -> dict:
    """The canvas JSON of a simple drawn `digit` (0, 1 or 7), its k-th variant (moved and resized a little)."""
    dx, s = 8 * (k % 3) - 8, 1 + 0.05 * (k % 4)
    shapes = {1: [[[160, 40], [162, 150], [165, 280]]],
              7: [[[60, 50], [160, 50], [260, 50]], [[260, 50], [200, 160], [140, 280]]],
              0: [circle(160, 160, 70, 110)]}
    lines = [[[round(160 + (x - 160) * s + dx, 1), round(160 + (y - 160) * s, 1)] for x, y in line]
             for line in shapes[digit]]
    return {"width": 320, "height": 320, "brush": 22, "strokes": lines}


def drawings(per_digit: int = 3, digits=(0, 1, 7)) -> list[dict]:
    return [{"strokes": strokes(d, k), "label": d} for d in digits for k in range(per_digit)]


@pytest.fixture(scope="module")
def app(tmp_path_factory, synthetic_root, shipped_checkpoint):
    runs = tmp_path_factory.mktemp("teach-runs")
    built = demo.build_app(shipped_checkpoint, runs, data_dir=str(synthetic_root), download=False,
                           train_backend=LocalBackend(1, 1), teach=QUICK)   # one slot: a teach waits behind a run
    with serve(built) as url:
        yield {"url": url, "runs": runs, "trainer": built.services.training,
               "base_name": built.services.registry.info("shipped").name}


def client(url: str) -> Client:
    return Client(url, verbose=False, headers={OWNER_HEADER: TOKEN})


def wait_state(job, state: str, timeout: float = 60) -> tuple:
    deadline = time.time() + timeout
    while time.time() < deadline:
        outs = job.outputs()
        if outs and state_of(outs[-1][0]) == state:
            return outs[-1]
        time.sleep(0.05)
    raise AssertionError(f"never {state}: {job.outputs()[-1] if job.outputs() else None}")


def test_teach_waits_its_turn_then_streams_and_saves_your_run(app):
    other = Client(app["url"], verbose=False)
    start_long_run(other)                                          # the one slot is taken
    teacher = client(app["url"])
    job = teacher.submit(drawings(), "shipped", api_name="/teach")
    status, result = wait_state(job, "queued")
    assert "data-position='1'" in status and result["position"] == 1 and result["key"] is None
    other.predict(api_name="/stop")                                # the run stops: the teach takes the slot
    final_status, final = job.result(timeout=180)
    states = [state_of(o[0]) for o in job.outputs()]
    assert states.index("queued") < states.index("loading") < states.index("finished"), states
    assert "running" in states
    assert state_of(final_status) == "finished" and final["state"] == "finished", final
    key = final["key"]
    assert key.startswith("runs/teach-") and key.endswith(".pt")
    report = final["report"]
    assert report["taught"] + report["held"] == 9 and report["held"] == 3   # one of each digit drawn 3 times
    for k in ("held_before", "held_after", "mnist_before", "mnist_after"):
        assert 0 <= report[k] <= 100
    ckpt = load_checkpoint(app["runs"] / key.removeprefix("runs/"))
    assert ckpt["owner"] == record_of(owner_id(TOKEN))                  # the caller's own run
    assert ckpt["name"] == f"{app['base_name']} + your handwriting" and ckpt["base"] == app["base_name"]
    assert ckpt["teach"]["mnist_after"] == pytest.approx(report["mnist_after"])
    assert "your handwriting" in final["message"] and "MNIST test accuracy" in final["message"]
    picked = teacher.predict(key, api_name="/choose_model")            # listed: the picker takes it
    assert "Could not" not in picked[-1] and "No model" not in picked[-1], picked


@pytest.mark.parametrize("items, says", [
    (drawings(3) + [{"strokes": strokes(1, 0), "label": 4}], "too few drawings of 4"),
    (drawings(3) + [{"strokes": strokes(1, 0), "label": 12}], "drawing 10: the label must be a digit 0-9"),
    (drawings(3) + [{"strokes": {"width": 320, "height": 320, "strokes": [[["a", 1]]]}, "label": 1}], "drawing 10"),
    ("not json [", "not valid JSON"),
    ([], "no drawings"),
])
def test_refusals_are_one_line_and_start_nothing(app, items, says):
    before = sorted(p.name for p in app["runs"].iterdir())
    status, result = client(app["url"]).predict(items, "shipped", api_name="/teach")
    assert state_of(status) == "refused" and result["state"] == "refused", result
    assert says in result["message"] and "\n" not in result["message"] and "Traceback" not in result["message"]
    assert app["trainer"].status()["running"] == 0 and app["trainer"].status()["waiting"] == 0
    assert sorted(p.name for p in app["runs"].iterdir()) == before


def test_an_unknown_model_key_is_refused(app):
    status, result = client(app["url"]).predict(drawings(), "runs/../../etc/passwd", api_name="/teach")
    assert state_of(status) == "refused" and "no model to teach" in result["message"]


def test_my_digits_download_as_a_zip_and_restore(app, tmp_path):
    c = client(app["url"])
    mine = drawings(3)
    path, note = c.predict(mine, "", api_name="/download_digits")
    assert "9 drawings" in note
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
        assert {"strokes.jsonl", "MNIST/raw/train-images-idx3-ubyte", "MNIST/raw/t10k-labels-idx1-ubyte"} <= names
    back = c.predict(handle_file(path), api_name="/restore_digits")
    assert [d["label"] for d in back["drawings"]] == [d["label"] for d in mine]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"strokes": strokes(1, 0), "label": 11}) + "\n")
    refused = c.predict(handle_file(str(bad)), api_name="/restore_digits")
    assert set(refused) == {"error"} and refused["error"].startswith("Not restored:") and "\n" not in refused["error"]
    empty_path, note = c.predict([], "", api_name="/download_digits")
    assert empty_path is None and note.startswith("Nothing to download")


@pytest.fixture(scope="module")
def ray_app(request, tmp_path_factory, synthetic_root, shipped_checkpoint):
    need(HAVE_RAY, "ray is not installed (pip install -r requirements-ray.txt)")
    ray_cluster = request.getfixturevalue("cluster")
    runs = tmp_path_factory.mktemp("teach-ray-runs")
    nowhere = tmp_path_factory.mktemp("no-mnist-here")   # the workers read their own MNIST_DATA_DIR
    built = demo.build_app(shipped_checkpoint, runs, data_dir=str(nowhere), download=False,
                           train_backend=ray_cluster["backend"], teach=QUICK)
    with launched(built, keep_backend=True) as url:   # the cluster fixture owns the backend
        yield {"url": url, "runs": runs, "trainer": built.services.training}


def test_teach_on_the_ray_cluster(ray_app):
    """The same teach as a Ray task on the cluster's CPU place (its spec carries the base model's bytes and
    the drawings: the worker needs nothing of the app's), saved here as the caller's run."""
    assert ray_app["trainer"].status()["backend"] == "ray"
    job = client(ray_app["url"]).submit(drawings(), "shipped", api_name="/teach")
    status, final = job.result(timeout=240)
    states = [state_of(o[0]) for o in job.outputs()]
    assert state_of(status) == "finished" and final["key"].startswith("runs/teach-"), (final, states)
    assert "loading" in states and "running" in states
    ckpt = load_checkpoint(ray_app["runs"] / final["key"].removeprefix("runs/"))
    assert ckpt["owner"] == record_of(owner_id(TOKEN)) and ckpt["teach"]["taught"] == 6


def test_the_report_in_words():
    from mnist_web.train_runner import Outcome, report_sentence, teach_report, teach_verdict

    record = {"epoch": 1, "held_before": 40.0, "held_after": 100.0, "mnist_before": 99.31, "mnist_after": 99.25,
              "taught": 12, "held": 5, "seconds": 3.0}
    report = teach_report(record)
    assert report == {k: record[k] for k in ("held_before", "held_after", "mnist_before", "mnist_after", "taught",
                                             "held")}
    assert report_sentence(report) == ("12 drawings of yours. On the 5 drawings kept aside: 40.0% right before, "
                                       "100.0% after. MNIST test accuracy: 99.31% before, 99.25% after.")
    none_held = teach_report({**record, "held": 0, "held_before": float("nan"), "held_after": float("nan")})
    assert none_held["held_before"] is None and "None kept aside" in report_sentence(none_held)
    assert teach_report({"epoch": 1, "test_accuracy": 99.0}) is None          # a training run's record
    assert teach_verdict(Outcome(state="finished", record=record))[0] == "finished"
    assert teach_verdict(Outcome(state="stopped"))[0] == "stopped"
    assert teach_verdict(Outcome(state="failed", reason="boom."))[1] == "Failed: boom."
