"""Abuse-proof: each probe of issue 16 replayed against a real server process over HTTP on loopback.

Targets per probe: answered within a few seconds (1 s on an idle machine; the bound here is generous
for a loaded 2-core CI box), server RSS growth < 100 MB and back to baseline +/- 50 MB afterwards,
log growth < 10 KB, and a normal /classify right after answers within 2x its idle time.
"""
from __future__ import annotations

import json
import statistics
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from tests.server import Server, multipart, request, send_head
from tests.test_strokes import SEVEN, payload

ANSWER_S = 5.0       # "within 1 s" idle; generous for a loaded CI machine (measured: 0.05-0.5 s)
RSS_GROWTH_MB = 100
RSS_BASELINE_MB = 50
LOG_GROWTH = 10_000


def png_bomb(side: int = 13_000) -> bytes:
    """A valid all-black PNG of side x side pixels in a few tens of KB (169 MB once decoded)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")
    z = zlib.compressobj(9)
    row = b"\0" * (side + 1)
    idat = b"".join(z.compress(row * 500) for _ in range(side // 500)) + z.compress(row * (side % 500)) + z.flush()
    ihdr = side.to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("bomb") / "bomb.png"
    p.write_bytes(png_bomb())
    return p


@pytest.fixture(scope="module")
def server(tmp_path_factory, synthetic_root, shipped_checkpoint):
    tmp = tmp_path_factory.mktemp("abuse")
    runs = tmp / "runs"
    runs.mkdir()
    s = Server(tmp, "--data-dir", str(synthetic_root), "--no-download", "--runs-dir", str(runs),
               "--checkpoint", str(shipped_checkpoint))
    s.runs = runs
    c = Client(s.url + "/", verbose=False)
    for _ in range(5):                          # warm up: first calls load the model and allocate
        c.predict(payload(SEVEN), api_name="/classify_strokes")
    s.client = c
    yield s
    s.stop()


def classify_seconds(c: Client, n: int = 5) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        assert c.predict(payload(SEVEN), api_name="/classify_strokes")[0]["label"] == "7"
        times.append(time.perf_counter() - t)
    return statistics.median(times)


class Probe:
    """Measure one probe: time, RSS peak-ish growth, log growth, normal latency afterwards."""

    def __init__(self, server: Server) -> None:
        self.s = server

    def __enter__(self):
        self.idle = classify_seconds(self.s.client)
        self.rss0, self.log0 = self.s.rss_mb(), self.s.log_size()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            return False
        self.seconds = time.perf_counter() - self.t0
        self.rss_growth = self.s.rss_mb() - self.rss0
        self.log_growth = self.s.log_size() - self.log0
        bound = max(2 * self.idle, self.idle + 0.25)
        after = classify_seconds(self.s.client)
        if after >= bound:   # a blip from other processes on the machine, or a lasting slowdown? look again
            after = min(after, classify_seconds(self.s.client, 9))
        assert self.seconds < ANSWER_S, f"took {self.seconds:.2f} s"
        assert self.rss_growth < RSS_GROWTH_MB, f"RSS grew {self.rss_growth:.0f} MB"
        assert self.log_growth < LOG_GROWTH, f"log grew {self.log_growth:,} bytes"
        assert after < bound, f"classify after: {after:.3f} s vs idle {self.idle:.3f} s"
        assert abs(self.s.rss_mb() - self.rss0) < RSS_BASELINE_MB
        return False


def test_sketchpad_blob_route_is_gone(server):
    for origin in (None, "https://evil.example"):
        with Probe(server):
            for cid in range(1, 12):
                body, ctype = multipart({"component_id": str(cid), "fn_name": "accept_blobs", "session_hash": "s",
                                         "data": json.dumps({"type": "layer", "index": "50000000", "id": "x"})},
                                        {"files": ("b", b"x")})
                headers = {"Content-Type": ctype, **({"Origin": origin} if origin else {})}
                status, _ = request(server.url + "/gradio_api/component_server", data=body, headers=headers,
                                    method="POST")
                assert 400 <= status < 500, (cid, status)


def test_decompression_bomb_is_refused_by_its_header(server, bomb):
    assert bomb.stat().st_size < 200_000
    for value in ({"background": None, "layers": [], "composite": handle_file(str(bomb)), "id": None},
                  {"background": None, "layers": [handle_file(str(bomb))] * 3, "composite": None, "id": None}):
        with Probe(server):
            label, html = server.client.predict(value, api_name="/classify")
        assert label["label"] == "Draw a digit" and "too large" in html


def test_too_many_layers_are_refused(server, tmp_path):
    from PIL import Image
    Image.new("RGBA", (32, 32)).save(tmp_path / "l.png")
    # refused by the payload's schema (max 8 layers) before anything is decoded
    with Probe(server), pytest.raises(AppError):
        server.client.predict({"background": None, "layers": [handle_file(str(tmp_path / "l.png"))] * 9,
                               "composite": None, "id": None}, api_name="/classify")
    label, _ = server.client.predict({"background": None, "layers": [handle_file(str(tmp_path / "l.png"))] * 8,
                                      "composite": None, "id": None}, api_name="/classify")
    assert label["label"] == "Draw a digit"    # 8 empty layers: fine, and empty


def test_log_flooding_bodies_are_bounded(server):
    nulls = json.dumps({"data": [{"background": None, "layers": [None] * 1_000_000, "composite": None}]}).encode()
    with Probe(server):
        assert send_head(server.url, "/gradio_api/call/classify", len(nulls), {"Content-Type": "application/json"},
                         nulls[:4096]) == 413
        assert send_head(server.url, "/gradio_api/queue/join", 50_000_000, {"Content-Type": "application/json"},
                         b'{"data": ["' + b"a" * 4096) == 413
        # the same without a Content-Length (chunked): the bytes are counted as they arrive
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            conn.request("POST", "/gradio_api/call/classify", headers={"Content-Type": "application/json"},
                         body=(nulls[i:i + 65536] for i in range(0, len(nulls), 65536)), encode_chunked=True)
            # 413 from the guard, or 400 when FastAPI's body parser reports the cut-off stream first
            assert conn.getresponse().status in (400, 413)
        except (ConnectionResetError, BrokenPipeError):
            pass   # refused while still sending
        finally:
            conn.close()
    # under the body limit: Gradio's validation error is logged, but cut to a few hundred characters
    nulls = json.dumps({"data": [{"background": None, "layers": [None] * 150_000, "composite": None}]}).encode()
    with Probe(server):
        status, body = request(server.url + "/gradio_api/call/classify", data=nulls,
                               headers={"Content-Type": "application/json"}, method="POST")
        assert status == 200
        status, _ = request(server.url + "/gradio_api/call/classify/" + json.loads(body)["event_id"])
        assert status == 200


def test_host_header_and_cross_site_writes(server):
    port = server.port
    assert request(server.url + "/", headers={"Host": "evil.example:7890"})[0] == 400
    assert request(server.url + "/", headers={"Host": f"evil.example:{port}"})[0] == 400
    for good in (f"127.0.0.1:{port}", f"localhost:{port}"):
        assert request(server.url + "/", headers={"Host": good})[0] == 200
    status, _ = request(server.url + "/gradio_api/upload", data=b"--x--\r\n", method="POST",
                        headers={"Content-Type": "multipart/form-data; boundary=x", "Origin": "https://evil.example"})
    assert status == 403


def test_messages_never_leak_paths_or_echo_input(server, shipped_checkpoint):
    (server.runs / "broken.pt").write_bytes(shipped_checkpoint.read_bytes()[:5000])
    c = server.client
    _, msg = c.predict("runs/broken.pt", api_name="/choose_model")
    assert (msg.startswith("Could not load") and str(server.runs) not in msg
            and "/" not in msg.split("runs/broken.pt")[-1])
    with Probe(server):
        _, msg = c.predict("x" * 100_000, api_name="/choose_model")
    assert len(msg) < 250 and "x" * 81 not in msg and "shipped" not in msg
    config = json.loads(request(server.url + "/config")[1])
    assert config["analytics_enabled"] is False and config["run_history"] is False
    (server.runs / "broken.pt").unlink()


def test_choose_model_accepts_runs_trained_after_launch(server, shipped_checkpoint):
    new = server.runs / "run-later.pt"
    new.write_bytes(shipped_checkpoint.read_bytes())
    try:
        _, msg = server.client.predict("runs/run-later.pt", api_name="/choose_model")
        assert msg.startswith("Using"), msg
        _, msg = server.client.predict("../checkpoints/mnist_cnn.pt", api_name="/choose_model")
        assert msg.startswith("No model called")                        # never a path
    finally:
        new.unlink()
        server.client.predict("shipped", api_name="/choose_model")


def test_four_bombs_and_twenty_users(server, bomb):
    """4 parallel decompression bombs must not slow 20 normal users: their p99 stays under 1 s, or (on a
    loaded machine, where 20 clients alone take longer) within 1.5x of the same users without bombs."""
    value = {"background": None, "layers": [], "composite": handle_file(str(bomb)), "id": None}
    clients = [Client(server.url + "/", verbose=False) for _ in range(24)]

    def bomber(i):
        clients[20 + i].predict(value, api_name="/classify")

    def user(i):
        out = []
        for _ in range(3):
            t = time.perf_counter()
            assert clients[i].predict(payload(SEVEN), api_name="/classify_strokes")[0]["label"] == "7"
            out.append(time.perf_counter() - t)
        return out

    def p99(bombs: bool) -> float:
        with ThreadPoolExecutor(24) as pool:
            bombers = [pool.submit(bomber, i) for i in range(4 if bombs else 0)]
            users = [pool.submit(user, i) for i in range(20)]
            times = sorted(t for f in users for t in f.result())
            for f in bombers:
                f.result()
        return times[int(0.99 * (len(times) - 1))]

    rss0 = server.rss_mb()
    alone = p99(False)
    with_bombs = p99(True)
    print(f"20 users' p99: {alone:.3f} s alone, {with_bombs:.3f} s with 4 bombs")
    assert with_bombs < max(1.0, 1.5 * alone), f"p99 {with_bombs:.2f} s with bombs vs {alone:.2f} s without"
    assert server.rss_mb() - rss0 < RSS_GROWTH_MB


def train_status(c: Client, **over) -> str:
    from tests.test_app import train_args
    return c.predict(*train_args(**over), api_name="/train")[0]


def test_training_slot_cannot_be_hogged_or_flooded_with_junk_runs(server):
    c = server.client
    before = sorted(p.name for p in server.runs.iterdir())
    with Probe(server):
        # 50 epochs of batch 1 on 60,000 samples: ~11 hours of the only training slot, refused up front
        status = train_status(c, epochs=50, batch_size=1, samples=60_000)
    assert "data-state='refused'" in status and "optimizer steps" in status, status[:300]
    # a 1-sample, batch-1 run trains but is too small to be kept: no junk checkpoint for every user
    status = train_status(c, epochs=1, batch_size=1, samples=1)
    assert "data-state='finished'" in status and "Not saved" in status, status[:300]
    assert sorted(p.name for p in server.runs.iterdir()) == before


@pytest.mark.parametrize("field, value", [("batch_size", 2.5), ("epochs", True), ("epochs", None), ("samples", "12")])
def test_whole_numbers_are_not_coerced(server, field, value):
    status = train_status(server.client, **{field: value})
    assert "data-state='refused'" in status, (field, value, status[:300])
