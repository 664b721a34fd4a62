"""The model picker's registry: known keys only, newest runs first, cached loads, unreadable files labelled."""
import os
import shutil

import pytest

from mnist_core.checkpoint import CheckpointError
from mnist_core.registry import SHIPPED_KEY, ModelRegistry


@pytest.fixture
def reg(tmp_path, tiny_checkpoint):
    shipped = tmp_path / "mnist_cnn.pt"
    shutil.copy(tiny_checkpoint, shipped)
    runs = tmp_path / "runs"
    runs.mkdir()
    for i, name in enumerate(["old.pt", "new.pt", "mid.pt"]):
        shutil.copy(tiny_checkpoint, runs / name)
        os.utime(runs / name, (1_700_000_000 + [0, 200, 100][i],) * 2)
    (runs / "notes.txt").write_text("not a checkpoint")
    return ModelRegistry(shipped, runs)


def test_paths_shipped_first_then_runs_newest_first(reg, tmp_path):
    paths = reg.paths()
    assert list(paths) == ["shipped", "runs/new.pt", "runs/mid.pt", "runs/old.pt"] and SHIPPED_KEY == "shipped"
    assert paths[SHIPPED_KEY] == tmp_path / "mnist_cnn.pt" and paths["runs/mid.pt"] == tmp_path / "runs" / "mid.pt"


def test_missing_shipped_or_runs_folder(tmp_path, tiny_checkpoint):
    assert ModelRegistry(tmp_path / "none.pt", tmp_path / "no_runs").paths() == {}
    assert ModelRegistry(tmp_path / "none.pt", tmp_path / "no_runs").choices() == []
    (tmp_path / "runs").mkdir()
    shutil.copy(tiny_checkpoint, tmp_path / "runs" / "a.pt")
    assert list(ModelRegistry(tmp_path / "none.pt", tmp_path / "runs").paths()) == ["runs/a.pt"]


def test_choices_are_labelled_with_accuracy(reg):
    choices = reg.choices()
    assert [key for _, key in choices] == list(reg.paths())
    labels = dict((k, v) for v, k in choices)
    assert labels[SHIPPED_KEY].startswith("Recipe model (") and labels[SHIPPED_KEY].endswith("1 epoch)")
    assert labels["runs/new.pt"].startswith("new (") and "%" in labels["runs/new.pt"]


@pytest.mark.parametrize("key", ["nope", "runs/nope.pt", "runs/notes.txt", "../mnist_cnn.pt", "/etc/passwd",
                                 "runs/../mnist_cnn.pt", "mnist_cnn.pt", "", "runs/"])
def test_unknown_keys_are_refused(reg, key):
    with pytest.raises(CheckpointError, match="no checkpoint called"):
        reg.get(key)


def test_known_keys_load_and_are_cached(reg):
    a = reg.get(SHIPPED_KEY)
    assert a.name == SHIPPED_KEY and reg.get(SHIPPED_KEY) is a       # loaded once
    b = reg.get("runs/old.pt")
    assert b is not a and b.name == "runs/old.pt"


def test_a_changed_file_is_reloaded(reg, tmp_path):
    a = reg.get("runs/mid.pt")
    p = tmp_path / "runs" / "mid.pt"
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert reg.get("runs/mid.pt") is not a


def test_corrupt_file_is_refused_and_labelled(reg, tmp_path):
    (tmp_path / "runs" / "bad.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        reg.get("runs/bad.pt")
    with pytest.raises(CheckpointError):       # the failure is cached too, and still raised
        reg.get("runs/bad.pt")
    labels = {k: v for v, k in reg.choices()}
    assert labels["runs/bad.pt"] == "bad (unreadable)"
    assert labels["runs/old.pt"] != "old (unreadable)"


def test_a_file_removed_under_our_feet(reg, tmp_path, monkeypatch):
    gone = tmp_path / "runs" / "gone.pt"
    monkeypatch.setattr(reg, "paths", lambda: {"runs/gone.pt": gone})
    with pytest.raises(CheckpointError, match="was removed"):
        reg.get("runs/gone.pt")
