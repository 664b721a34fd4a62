"""Ready for public hosting: the Gradio floor, hosting variables, read-only mode, upload cap, temp-file
lifetime and the queue bound, checked on a real server process or through gradio_client."""
from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gradio
import pytest
from gradio_client import Client, handle_file

import demo
from mnist_web import handlers
from mnist_web.webguard import hosting_address, parse_hosts
from tests.conftest import ROOT
from tests.e2e.browser import free_port
from tests.server import Server, multipart, request, send_head
from tests.test_strokes import SEVEN, payload

# Published advisories for gradio and the first release that fixes each (search: GitHub advisories).
FIXED_IN = {
    "CVE-2026-27167, CVE-2026-28415, CVE-2026-28416 (SSRF via gr.load, open redirect in OAuth)": (6, 6, 0),
    "CVE-2026-28414": (6, 7, 0),
    "GHSA-j36p-7w88-g82j (path traversal in FileExplorer)": (6, 16, 0),
    "gradio-app/gradio#13593/#13608 (open redirect via /gradio_api/file=, fixed in 6.20.0)": (6, 20, 0),
}


def version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


def gradio_floor() -> tuple[int, ...]:
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        m = re.match(r"\s*gradio\s*>=\s*([\d.]+)", line)
        if m:
            return version(m.group(1))
    raise AssertionError("requirements.txt has no gradio>= floor")


def test_gradio_floor_is_past_every_known_advisory():
    floor = gradio_floor()
    for advisory, fixed in FIXED_IN.items():
        assert floor >= fixed, f"requirements.txt admits gradio {floor}, vulnerable to {advisory} (fixed in {fixed})"
    assert version(gradio.__version__) >= floor


def test_spaces_front_matter_runs_the_repository_as_a_space():
    text = (ROOT / "README.md").read_text()
    assert text.startswith("---\n")
    meta = dict(re.findall(r"^(\w+):\s*(.+?)\s*$", text.split("---\n")[1], re.M))
    assert meta["sdk"] == "gradio" and meta["app_file"] == "demo.py"
    assert {"title", "emoji", "sdk_version", "pinned"} <= set(meta)
    assert version(meta["sdk_version"].strip("'\"")) >= gradio_floor()


def test_hosting_address_precedence():
    env = {"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "7861"}
    assert hosting_address(None, None, {}) == ("127.0.0.1", 7860)           # safe default
    assert hosting_address(None, None, env) == ("0.0.0.0", 7861)            # what Spaces and containers set
    assert hosting_address("127.0.0.2", 9000, env) == ("127.0.0.2", 9000)   # flags win
    for bad in ("http", "0", "70000", "-1"):
        with pytest.raises(ValueError, match="GRADIO_SERVER_PORT"):
            hosting_address(None, None, {"GRADIO_SERVER_PORT": bad})
    assert parse_hosts("Demo.Example.org:443, [::1]:7860,") == ["demo.example.org", "::1"]


def test_read_only_flag_from_environment(monkeypatch):
    monkeypatch.setenv("MNIST_NO_TRAIN", "1")
    assert demo.parse_args([]).no_train is True
    monkeypatch.setenv("MNIST_NO_TRAIN", "0")
    assert demo.parse_args([]).no_train is False


@pytest.fixture(scope="module")
def hosted(tmp_path_factory, synthetic_root):
    """The app as a host runs it: address from GRADIO_SERVER_* only, read-only, short cache lifetime."""
    port = free_port()
    s = Server(tmp_path_factory.mktemp("hosted"), "--cache-max-age", "2", "--data-dir", str(synthetic_root),
               env={"GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), "MNIST_NO_TRAIN": "1"},
               port=port)
    yield s
    s.stop()


def test_server_listens_where_the_host_says_and_is_read_only(hosted):
    c = Client(hosted.url + "/", verbose=False)
    names = set(c.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/classify", "/classify_strokes", "/choose_model"} <= names
    assert not names & {"/train", "/stop"}
    status, _ = request(hosted.url + "/gradio_api/call/train", data=b'{"data": []}',
                        headers={"Content-Type": "application/json"}, method="POST")
    assert status >= 400                       # the route does not exist in read-only mode
    assert c.predict(payload(SEVEN), api_name="/classify_strokes")[0]["label"] == "7"


def test_a_50_mb_upload_is_refused_before_it_is_stored(hosted):
    before = set(hosted.temp_files())
    status = send_head(hosted.url, "/gradio_api/upload", 50_000_000,
                       {"Content-Type": "multipart/form-data; boundary=x"}, b"--x\r\n")
    assert status == 413
    # without a Content-Length (chunked) an upload is refused at once: nothing is spooled to disk
    body, ctype = multipart({}, {"files": ("big.png", b"\0" * (demo.UPLOAD_LIMIT + 200_000))})

    def chunks():
        for i in range(0, len(body), 1 << 20):
            yield body[i:i + 1 << 20]

    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", hosted.port, timeout=30)
    try:
        conn.request("POST", "/gradio_api/upload", body=chunks(), headers={"Content-Type": ctype},
                     encode_chunked=True)
        assert conn.getresponse().status == 411
    except (ConnectionResetError, BrokenPipeError):
        pass   # refused while still sending: also nothing stored
    finally:
        conn.close()
    assert set(hosted.temp_files()) == before


def test_uploads_land_in_gradio_temp_dir_and_expire(hosted, tmp_path):
    from PIL import Image
    Image.new("L", (64, 64), 255).save(tmp_path / "blank.png")
    body, ctype = multipart({}, {"files": ("blank.png", (tmp_path / "blank.png").read_bytes())})
    status, answer = request(hosted.url + "/gradio_api/upload", data=body, headers={"Content-Type": ctype},
                             method="POST")
    assert status == 200
    stored = Path(answer.decode().split('"')[1])
    assert stored.is_file() and hosted.temp_dir in stored.parents      # GRADIO_TEMP_DIR is respected
    deadline = time.time() + 20                                         # age 2 s, checked every 2 s
    while stored.exists() and time.time() < deadline:
        time.sleep(0.5)
    assert not stored.exists(), "a cached upload outlived --cache-max-age"


def test_a_full_queue_answers_queue_is_full_then_recovers(synthetic_root, shipped_checkpoint, tmp_path, monkeypatch):
    """max_queue=2: with the 4 workers busy and 2 waiting, further requests are turned away at once."""
    gate = threading.Event()
    real = handlers.prepare_strokes

    def slow(value):
        gate.wait(30)
        return real(value)

    monkeypatch.setattr(handlers, "prepare_strokes", slow)
    app = demo.build_app(shipped_checkpoint, tmp_path / "runs", data_dir=str(synthetic_root), download=False,
                            train_enabled=False, max_queue=2)
    port = free_port()
    demo.launch(app, port=port, prevent_thread_lock=True, quiet=True)
    try:
        url = f"http://127.0.0.1:{port}/"

        def call(_):
            try:
                return Client(url, verbose=False).predict(payload(SEVEN), api_name="/classify_strokes")[0]["label"]
            except Exception as exc:   # gradio_client raises with Gradio's message
                return f"error: {exc}"

        with ThreadPoolExecutor(10) as pool:
            futures = [pool.submit(call, i) for i in range(10)]
            deadline = time.time() + 60
            while sum(f.done() for f in futures) < 3 and time.time() < deadline:
                time.sleep(0.1)          # 4 run, 2 wait: the others are turned away while the gate is shut
            refused = [f.result() for f in futures if f.done()]
            gate.set()
            results = [f.result() for f in futures]
        assert len(refused) >= 3 and all("queue is full" in r.lower() for r in refused), refused
        assert all(r == "7" for r in results if r not in refused), results   # the admitted ones were answered
        assert Client(url, verbose=False).predict(payload(SEVEN), api_name="/classify_strokes")[0]["label"] == "7"
    finally:
        gate.set()
        app.close()


def test_classify_keeps_accepting_a_sketchpad_dict_or_a_plain_image(hosted, tmp_path):
    """Existing gradio_client scripts keep working: the old /classify input is unchanged."""
    from PIL import Image

    from tests.drawing import stroke_digit
    Image.fromarray(stroke_digit("7")).save(tmp_path / "seven.png")
    c = Client(hosted.url + "/", verbose=False)
    label, _ = c.predict({"background": None, "layers": [], "composite": handle_file(str(tmp_path / "seven.png")),
                          "id": None}, api_name="/classify")
    assert label["label"] == "7"
    label, _ = c.predict({"background": handle_file(str(tmp_path / "seven.png")), "layers": [], "composite": None,
                          "id": None}, api_name="/classify")
    assert label["label"] == "7"
