"""The app as its own process (python demo.py ...), for tests and benchmarks that measure the server
from outside: its memory (RSS), its log, its temp dir, what it answers over plain HTTP."""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from tests.e2e.browser import free_port

ROOT = Path(__file__).resolve().parent.parent


class Server:
    def __init__(self, tmp: Path, *args: str, env: dict | None = None, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tmp = Path(tmp)
        self.temp_dir = self.tmp / "gradio-temp"
        self.log_path = self.tmp / "server.log"
        full_env = {**os.environ, "GRADIO_TEMP_DIR": str(self.temp_dir), "PYTHONUNBUFFERED": "1",
                    "OMP_NUM_THREADS": "1", **(env or {})}
        for k, v in list(full_env.items()):
            if v is None:
                del full_env[k]
        cmd = [sys.executable, str(ROOT / "demo.py"), *args]
        if "--port" not in args and "GRADIO_SERVER_PORT" not in (env or {}):
            cmd += ["--port", str(self.port)]
        # The child writes the log through its own copy of the file descriptor; this process never writes
        # to it, so its handle can be closed as soon as the child has started.
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT)
        self.wait_ready()

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited ({self.proc.returncode}):\n{self.log()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + "/", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.3)
        raise RuntimeError(f"the server did not answer within {timeout} s:\n{self.log()[-3000:]}")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def temp_files(self) -> list[Path]:
        return [p for p in self.temp_dir.rglob("*") if p.is_file()] if self.temp_dir.exists() else []

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def request(url: str, data: bytes | None = None, headers: dict | None = None, method: str | None = None,
            timeout: float = 30) -> tuple[int, bytes]:
    """(status, body) of one plain HTTP request; HTTP errors are returned, not raised."""
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = "----mnistboundary7e3f"
    parts = []
    for k, v in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
    for k, (name, content) in files.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"; filename="{name}"\r\n'
                     f"Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def send_head(url: str, path: str, length: int, headers: dict | None = None, first: bytes = b"",
              timeout: float = 10) -> int:
    """Announce a body of `length` bytes, send only its first bytes, return the status the server
    answers with (a server that refuses by Content-Length answers before the body arrives)."""
    import socket
    from urllib.parse import urlsplit

    u = urlsplit(url)
    with socket.create_connection((u.hostname, u.port), timeout=timeout) as sock:
        head = [f"POST {path} HTTP/1.1", f"Host: {u.hostname}:{u.port}", f"Content-Length: {length}"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + first)
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else -1


@contextlib.contextmanager
def serve(app):
    """An app of demo.build_app, its page served by plain Gradio (without the app's routes and bounds) on
    a free port in a thread: yields its URL (ending in /)."""
    port = free_port()
    app.blocks.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        app.close()


@contextlib.contextmanager
def launched(app, keep_backend: bool = False):
    """An app of demo.build_app served as demo.launch serves it (the app's own routes and bounds), on a
    free port in a thread: yields its URL (ending in /)."""
    import demo

    port = free_port()
    demo.launch(app, host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        app.close(keep_backend)


def queue_stream(url: str, api_name: str, data: list, timeout: float | None = 300, config: dict | None = None,
                 headers: dict | None = None):
    """Call a streaming endpoint over Gradio's own protocol (queue/join, then the SSE stream), as the
    page does. Yields (bytes of the message on the wire, its kind, every output's value with Gradio's
    diffs applied) per update, up to and including process_completed. `config`: the app's /config, when
    the caller already has it (as a page that is loaded); `headers`: sent with the join and the stream
    (an owner token, X-Mnist-Owner, as the page's requests carry its cookie)."""
    import httpx
    from gradio_client.utils import apply_diff

    url = url.rstrip("/")
    cfg = config or httpx.get(f"{url}/config").json()
    prefix = cfg.get("api_prefix", "/gradio_api")
    dep = next(d for d in cfg["dependencies"] if d.get("api_name") == api_name)
    session = uuid.uuid4().hex[:10]
    httpx.post(f"{url}{prefix}/queue/join", timeout=30, headers=headers,
               json={"data": data, "fn_index": dep["id"], "session_hash": session}).raise_for_status()
    values = None
    with httpx.stream("GET", f"{url}{prefix}/queue/data", params={"session_hash": session}, timeout=timeout,
                      headers=headers) as s:
        for line in s.iter_lines():
            if not line.startswith("data:"):
                continue
            msg = json.loads(line[5:])
            kind = msg.get("msg")
            if kind not in ("process_generating", "process_completed"):
                continue
            out = (msg.get("output") or {}).get("data")
            if out is None:        # an error: no outputs
                return
            values = out if values is None or kind == "process_completed" else \
                [apply_diff(v, d) for v, d in zip(values, out, strict=True)]
            yield len(line.encode()), kind, values
            if kind == "process_completed":
                return
