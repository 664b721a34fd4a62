"""The Gradio app through its API (gradio_client), as a second program would use it."""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file  # requirements-dev.txt: a missing client fails, never skips
from PIL import Image

import demo
from mnist_web.backends import LocalBackend
from mnist_web.views import EMPTY_MESSAGE
from tests.drawing import stroke_digit
from tests.server import serve


@pytest.fixture(scope="module")
def app(tmp_path_factory, synthetic_root, shipped_checkpoint):
    runs = tmp_path_factory.mktemp("runs")
    # one training slot: a second run waits in the queue (the default is 2 slots)
    with serve(demo.build_app(shipped_checkpoint, runs, data_dir=str(synthetic_root), download=False,
                              train_backend=LocalBackend(1, 1))) as url:
        yield {"url": url, "runs": runs}


def sketch(tmp_path: Path, array: np.ndarray, name: str = "d.png") -> dict:
    Image.fromarray(array).save(tmp_path / name)
    return {"background": None, "layers": [], "composite": handle_file(str(tmp_path / name)), "id": None}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


TRAIN_DEFAULTS = dict(epochs=2, lr=0.02, momentum=0.9, batch_size=32, step_size=6, gamma=0.1, rotation=7,
                      dropout=0.0, seed=1, samples=1200, device="cpu")


def train_args(**over):
    v = {**TRAIN_DEFAULTS, **over}
    return [v[k] for k in ("epochs", "lr", "momentum", "batch_size", "step_size", "gamma", "rotation", "dropout",
                           "seed", "samples", "device")]


def start_long_run(client):
    """Submit a run that would take minutes; return the job once it is really training."""
    job = client.submit(*train_args(epochs=50, batch_size=8), api_name="/train")
    deadline = time.time() + 60
    while time.time() < deadline:
        outs = job.outputs()
        if outs and state_of(outs[-1][0]) == "running":
            return job
        time.sleep(0.1)
    raise AssertionError("the run never started")


def state_of(status_html: str) -> str:
    return status_html.split("data-state='")[1].split("'")[0]


@pytest.mark.parametrize("kind", ["1", "7", "0"])
def test_classify_drawn_digit(app, tmp_path, kind):
    label, html = Client(app["url"], verbose=False).predict(sketch(tmp_path, stroke_digit(kind)), api_name="/classify")
    assert label["label"] == kind
    assert len(label["confidences"]) == 10          # all 10 classes go over the API
    assert abs(sum(c["confidence"] for c in label["confidences"]) - 1) < 1e-4
    assert "data:image/png;base64," in html          # the 28x28 view the network saw


def test_empty_canvas_gives_the_empty_message(app, tmp_path):
    c = Client(app["url"], verbose=False)
    label, html = c.predict(sketch(tmp_path, np.zeros((320, 320, 4), np.uint8)), api_name="/classify")
    assert label["label"] == EMPTY_MESSAGE and "data-empty='true'" in html
    label, _ = c.predict(None, api_name="/classify")
    assert label["label"] == EMPTY_MESSAGE


def test_train_two_epochs_streams_and_new_model_is_usable(app, tmp_path):
    c = Client(app["url"], verbose=False)
    c.submit(*train_args(), api_name="/train").result(timeout=120)   # a first run, so two exist
    job = c.submit(*train_args(seed=2), api_name="/train")
    job.result(timeout=120)
    outputs = job.outputs()
    rows_seen = [len(o[1]["data"]) for o in outputs]
    assert rows_seen == sorted(rows_seen) and rows_seen[-1] == 2
    assert {1, 2} <= set(rows_seen)                 # an update arrived after each epoch
    final_status, table = outputs[-1][0], outputs[-1][1]
    assert state_of(final_status) == "finished"
    epochs = [r[0] for r in table["data"]]
    assert epochs == [1, 2]
    for r in table["data"]:
        assert 0 < r[2] < 3 and 0 <= r[3] <= 100 and 0 < r[4] < 3 and 0 <= r[5] <= 100 and r[6] > 0
    picker = outputs[-1][4]
    new_keys = [k for _, k in picker["choices"] if k.startswith("runs/")]
    assert len(new_keys) == 2 and all((app["runs"] / k.split("/", 1)[1]).is_file() for k in new_keys)
    # choose the newest model and classify with it
    _, msg = c.predict(new_keys[0], api_name="/choose_model")
    assert msg.startswith("Using") and "2 epochs" in msg
    label, html = c.predict(sketch(tmp_path, stroke_digit("7")), api_name="/classify")
    assert "confidences" in label and "model: " in html
    assert "2 epochs" in html and "15 epochs" not in html   # the new model answered, not the shipped one


def test_bad_values_start_nothing(app):
    c = Client(app["url"], verbose=False)
    before = sorted(p.name for p in app["runs"].iterdir())
    for over, words in [(dict(epochs=0), "epochs"), (dict(lr=-1), "lr"), (dict(batch_size=0), "batch_size"),
                        (dict(samples=0), "max_train_samples"), (dict(epochs=1000), "epochs")]:
        status = c.predict(*train_args(**over), api_name="/train")[0]
        assert state_of(status) == "refused" and words in status, status
    assert sorted(p.name for p in app["runs"].iterdir()) == before


def test_stop_is_prompt_keeps_files_and_allows_a_new_run(app, tmp_path, shipped_checkpoint):
    c = Client(app["url"], verbose=False)
    files = {p: digest(p) for p in [shipped_checkpoint, *app["runs"].glob("*.pt")]}
    job = start_long_run(c)
    try:
        t0 = time.time()
        c.predict(api_name="/stop")
        job.result(timeout=30)
        elapsed = time.time() - t0
    finally:
        c.predict(api_name="/stop")   # never leave a long run going for the next test
    final = job.outputs()[-1][0]
    assert state_of(final) == "stopped", final
    assert elapsed < 10, elapsed   # one batch of 8 takes milliseconds; 10 s is generous on a loaded 2-core box
    assert {p: digest(p) for p in files} == files   # nothing existing was touched
    status = c.predict(*train_args(epochs=1), api_name="/train")[0]
    assert state_of(status) == "finished"


def test_a_second_run_queues_behind_the_first_and_classify_still_answers(app, tmp_path):
    a, b = Client(app["url"], verbose=False), Client(app["url"], verbose=False)
    job = start_long_run(a)
    try:
        t0 = time.time()
        second = b.submit(*train_args(epochs=1), api_name="/train")
        while not second.outputs() and time.time() - t0 < 30:
            time.sleep(0.05)
        first = second.outputs()[0][0]
        assert state_of(first) == "queued" and "data-position='1'" in first and "next in line" in first, first
        assert time.time() - t0 < 5     # Start answers at once, even with the slot taken
        label, _ = b.predict(sketch(tmp_path, stroke_digit("1")), api_name="/classify")
        assert label["label"] == "1"
        again = a.predict(*train_args(epochs=1), api_name="/train")[0]   # the same session: one job at a time
        assert state_of(again) == "refused" and "already has a run" in again, again
    finally:
        a.predict(api_name="/stop")
    assert state_of(job.result(timeout=30)[0]) == "stopped"
    assert state_of(second.result(timeout=120)[0]) == "finished"   # its turn came when the first stopped


@pytest.mark.parametrize("content", [b"", b"this is not an image at all"])
def test_unreadable_upload_gets_the_apps_message(app, tmp_path, content):
    (tmp_path / "bad.png").write_bytes(content)
    c = Client(app["url"], verbose=False)
    label, html = c.predict({"background": None, "layers": [], "composite": handle_file(str(tmp_path / "bad.png")),
                             "id": None}, api_name="/classify")
    assert label["label"] == EMPTY_MESSAGE and "could not be read as an image" in html
    # and the app still classifies afterwards
    label, _ = c.predict(sketch(tmp_path, stroke_digit("1")), api_name="/classify")
    assert label["label"] == "1"


def test_missing_shipped_checkpoint_still_starts(tmp_path, synthetic_root):
    app = demo.build_app(tmp_path / "missing.pt", tmp_path / "runs", data_dir=str(synthetic_root), download=False)
    with serve(app) as url:
        c = Client(url, verbose=False)
        label, html = c.predict(sketch(tmp_path, stroke_digit("7")), api_name="/classify")
        assert label["label"] == EMPTY_MESSAGE and "No model available" in html and "train one" in html


def test_missing_mnist_is_reported_in_the_status(tmp_path, shipped_checkpoint, monkeypatch):
    import torchvision.datasets

    def no_network(*a, **k):
        raise RuntimeError("Error downloading: [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets, "MNIST", no_network)
    app = demo.build_app(shipped_checkpoint, tmp_path / "runs", data_dir=str(tmp_path / "nodata"), download=True)
    with serve(app) as url:
        status = Client(url, verbose=False).predict(*train_args(), api_name="/train")[0]
        assert state_of(status) == "failed" and "MNIST/raw" in status and "--data-dir" in status


def test_safe_defaults(monkeypatch):
    for var in ("GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT", "MNIST_NO_TRAIN", "MNIST_ALLOWED_HOSTS"):
        monkeypatch.delenv(var, raising=False)
    a = demo.parse_args([])
    assert a.share is False and a.no_train is False and a.allowed_hosts is None
    assert demo.hosting_address(a.host, a.port) == ("127.0.0.1", 7860)


def test_corrupted_checkpoint_in_the_picker_keeps_the_current_model(tmp_path, synthetic_root, shipped_checkpoint):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "broken.pt").write_bytes(shipped_checkpoint.read_bytes()[:5000])   # a truncated copy
    app = demo.build_app(shipped_checkpoint, runs, data_dir=str(synthetic_root), download=False)
    with serve(app) as url:
        c = Client(url, verbose=False)
        _, msg = c.predict("runs/broken.pt", api_name="/choose_model")
        assert msg.startswith("Could not load") and "Still using the previous one" in msg
        label, html = c.predict(sketch(tmp_path, stroke_digit("7")), api_name="/classify")
        assert label["label"] == "7" and "15 epochs" in html      # still the shipped model


def test_twenty_clients_classify_while_a_run_trains(app, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    trainer = Client(app["url"], verbose=False)
    job = start_long_run(trainer)
    files = {k: sketch(tmp_path, stroke_digit(k), f"{k}.png") for k in "017"}

    def user(i):
        c = Client(app["url"], verbose=False)
        kind = "017"[i % 3]
        return [(kind, c.predict(files[kind], api_name="/classify")[0]["label"]) for _ in range(2)]

    try:
        with ThreadPoolExecutor(20) as pool:
            answers = [a for r in pool.map(user, range(20)) for a in r]
        assert len(answers) == 40 and all(kind == got for kind, got in answers)
        assert state_of(job.outputs()[-1][0]) == "running"     # the run was going all along
    finally:
        trainer.predict(api_name="/stop")
    assert state_of(job.result(timeout=30)[0]) == "stopped"
