"""Owners over the API (issue 31): two gradio_client users with their own owner tokens (X-Mnist-Owner):
only the owner of a run can delete it; a user without a token is their session."""
from __future__ import annotations

import pytest
from gradio_client import Client

import demo
from tests.server import launched
from tests.test_app import state_of, train_args

TOKEN_A, TOKEN_B = "a" * 32, "B" * 32


@pytest.fixture(scope="module")
def url(tmp_path_factory, synthetic_root, shipped_checkpoint):
    from mnist_web.backends import ThreadBackend

    runs = tmp_path_factory.mktemp("runs")
    app = demo.build_app(shipped_checkpoint, runs, data_dir=str(synthetic_root), download=False,
                         train_backend=ThreadBackend(1))
    with launched(app) as url:
        yield url, runs


def client(url, token=None):
    return Client(url, verbose=False, headers={"X-Mnist-Owner": token} if token else None)


def test_only_the_owner_deletes_a_run(url):
    url, runs = url
    a, b = client(url, TOKEN_A), client(url, TOKEN_B)
    out = a.predict(*train_args(epochs=1, samples=1000, batch_size=50), api_name="/train")
    assert state_of(out[0]) == "finished", out[0]
    key = out[6]["value"]                                 # the run pick, as docs/api.md says
    name = key.removeprefix("runs/")
    assert (runs / name).is_file()
    for stranger in (b, client(url)):                   # another token, or none at all
        msg = stranger.predict(key, [], api_name="/delete_run")[0]
        assert msg == "Not deleted: that run is not yours to delete" and (runs / name).is_file()
    msg = a.predict(key, [], api_name="/delete_run")[0]
    assert msg == f"Deleted {name}." and not (runs / name).exists()
    assert b.predict("shipped", [], api_name="/delete_run")[0].startswith("Not deleted")
