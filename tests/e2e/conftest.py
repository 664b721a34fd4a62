"""Fixtures of the browser tests: the app on a free localhost port, and Debian's Chromium."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import need
from tests.e2e.browser import ARTIFACTS, CHROMIUM, free_port, launch_browser


@pytest.fixture(scope="module")
def server(tmp_path_factory, synthetic_root, shipped_checkpoint):
    """The app on the synthetic data set, on purpose: the browser tests check the page; the real-MNIST
    figures are tested elsewhere."""
    need(Path(CHROMIUM).exists(), "Chromium is not installed (apt-get install -y chromium)")
    import demo

    app = demo.build_app(shipped_checkpoint, tmp_path_factory.mktemp("runs"), data_dir=str(synthetic_root),
                         download=False)
    port = free_port()
    demo.launch(app, port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    app.close()   # the server closed, its jobs stopped, its worker processes ended


@pytest.fixture(scope="module")
def browser(server):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need(False, "playwright is not installed (pip install -r requirements-dev.txt)")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        b = launch_browser(p)
        yield b
        b.close()
