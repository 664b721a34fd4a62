"""Your runs stay yours, in a real browser (issue 31): the page's owner token survives a reload, the
reloaded page shows its running job again and Stop reaches it, and the saved run is listed as yours;
another browser (another token) sees it as someone else's and cannot delete it. Synthetic data."""
from __future__ import annotations

import pytest

from tests.e2e.browser import open_page, playwright_or_skip, served_with_browser, set_number, wait_state


@pytest.fixture(scope="module")
def app(tmp_path_factory, synthetic_root, shipped_checkpoint):
    playwright_or_skip()
    import demo
    from mnist_web.backends import LocalBackend

    runs = tmp_path_factory.mktemp("runs")
    app = demo.build_app(shipped_checkpoint, runs, data_dir=str(synthetic_root), download=False,
                         train_backend=LocalBackend(1, 1))
    with served_with_browser(app) as (url, browser):
        yield {"url": url, "runs": runs, "browser": browser}


def token(pg) -> str:
    return pg.evaluate("() => localStorage.getItem('mnist-owner')")


def run_choices(pg) -> list[str]:
    pg.click("#run-pick input")
    items = [t.split("\n")[-1].strip() for t in pg.locator("#run-pick li.item").all_inner_texts()]  # no "✓"
    pg.keyboard.press("Escape")
    return items


def test_a_reload_keeps_the_owner_and_its_run(app):
    ctx = app["browser"].new_context(viewport={"width": 1280, "height": 1000})
    pg = ctx.new_page()
    pg.goto(app["url"])
    pg.wait_for_selector("#sketchpad canvas")
    first = token(pg)
    assert first and len(first) >= 22 and f"mnist_owner={first}" in pg.evaluate("() => document.cookie")
    pg.get_by_role("tab", name="Train").click()
    set_number(pg, "epochs", 30)
    set_number(pg, "samples", 1200)
    set_number(pg, "batch", 2)
    pg.click("#start")
    pg.wait_for_function("() => /Epoch [2-9]/.test(document.querySelector('#train-status').innerText)",
                         timeout=120_000)                                   # one epoch done: something to keep

    pg.reload()                                                             # the same browser, a new session
    pg.wait_for_selector("#sketchpad canvas")
    assert token(pg) == first
    pg.get_by_role("tab", name="Train").click()
    assert wait_state(pg, ["running"], 60_000) == "running"                 # the job shown again, not lost
    pg.wait_for_function("() => !document.querySelector('#stop').disabled", timeout=30_000)
    assert int(pg.locator("#loss-plot path[data-series='train (this run)']").get_attribute("data-points")) > 0
    pg.click("#stop")                                                       # Stop reaches the run of before
    assert wait_state(pg, ["stopped"], 60_000) == "stopped"
    assert "Saved as" in pg.inner_text("#train-status")
    mine = [c for c in run_choices(pg) if c.startswith("Yours: run-")]
    assert len(mine) == 1, run_choices(pg)

    other = open_page(app["browser"], app["url"])                            # another browser: another owner
    try:
        assert token(other) != first
        other.get_by_role("tab", name="Train").click()
        name = mine[0].removeprefix("Yours: ").split(" (")[0]
        other.click("#run-pick input")
        # the page is built with the lists of its build time; its load event brings them up to date
        other.wait_for_function("(n) => [...document.querySelectorAll('#run-pick li.item')]"
                                ".some(e => e.innerText.includes(n))", arg=name, timeout=30_000)
        theirs = [t.split("\n")[-1].strip() for t in other.locator("#run-pick li.item").all_inner_texts()]
        assert any(c.startswith(name) for c in theirs) and not any(c.startswith("Yours:") for c in theirs), theirs
        other.locator("#run-pick li.item", has_text=name).first.click()
        other.keyboard.press("Escape")
        other.wait_for_function("() => !document.querySelector('#delete').disabled", timeout=30_000)
        other.click("#delete")
        other.click("#confirm-delete")
        other.wait_for_function("() => document.querySelector('#run-msg').innerText.includes('not yours')",
                                timeout=30_000)
        assert (app["runs"] / f"{name}.pt").is_file()
    finally:
        other.close()
        ctx.close()
