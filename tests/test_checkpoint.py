import os
import stat

import pytest
import torch

from mnist_core.checkpoint import CheckpointError, describe, load_checkpoint, model_from_checkpoint, save_checkpoint


def test_round_trip_gives_identical_logits(tiny_checkpoint, tmp_path):
    ckpt = load_checkpoint(tiny_checkpoint)
    a = model_from_checkpoint(ckpt)
    save_checkpoint(ckpt, tmp_path / "copy.pt")
    b = model_from_checkpoint(load_checkpoint(tmp_path / "copy.pt"))
    x = torch.randn(8, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))


def test_contents(tiny_checkpoint):
    c = load_checkpoint(tiny_checkpoint)
    assert c["format_version"] == 1 and c["model_args"]["architecture"] == "mnist-cnn-7416"
    assert c["normalization"] == {"mean": 0.1307, "std": 0.3081}
    assert c["config"]["epochs"] == 1 and len(c["history"]) == 1 and c["status"] == "complete"
    assert 0 <= c["test_metrics"]["accuracy"] <= 100 and len(c["test_metrics"]["confusion_matrix"]) == 10
    assert c["best"]["epoch"] == 1


@pytest.mark.parametrize("content,words", [
    (b"", r"is empty \(0 bytes\)"),
    (b"hello, I am not a checkpoint", "not a readable checkpoint"),
])
def test_garbage_files(tmp_path, content, words):
    (tmp_path / "x.pt").write_bytes(content)
    with pytest.raises(CheckpointError, match=words):
        load_checkpoint(tmp_path / "x.pt")


def test_truncated(tiny_checkpoint, tmp_path):
    data = tiny_checkpoint.read_bytes()
    (tmp_path / "t.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "t.pt")


def test_missing(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pt")


def test_not_our_dict_and_other_architecture(tiny_checkpoint, tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an mnist_core checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    c = load_checkpoint(tiny_checkpoint)
    c["state_dict"] = {**c["state_dict"], "head.weight": torch.zeros(12, 16, 1, 1)}
    torch.save(c, tmp_path / "arch.pt")
    with pytest.raises(CheckpointError, match="another architecture"):
        load_checkpoint(tmp_path / "arch.pt")
    c["model_args"] = {"architecture": "resnet"}
    torch.save(c, tmp_path / "arch2.pt")
    with pytest.raises(CheckpointError, match="another architecture"):
        load_checkpoint(tmp_path / "arch2.pt")


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED_BY_PICKLE",))


def test_malicious_pickle_does_not_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"format_version": 1, "model_args": {}, "state_dict": _Evil(), "normalization": {}},
               tmp_path / "evil.pt", pickle_protocol=2)
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "evil.pt")
    assert not (tmp_path / "PWNED_BY_PICKLE").exists()


def test_failed_save_keeps_previous_file_and_leaves_no_temp(tiny_checkpoint, tmp_path, monkeypatch):
    target = tmp_path / "model.pt"
    save_checkpoint(load_checkpoint(tiny_checkpoint), target)
    before = target.read_bytes()

    during = []

    def full_disk(obj, f, *a, **k):
        f.write(b"partial bytes")
        during.append(sorted(p.name for p in tmp_path.glob("*.pt")))   # what the model picker would list
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint({"anything": 1}, target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
    assert during == [["model.pt"]]        # the half-written temp file is never a *.pt the picker could offer


def test_written_readable_by_everyone_writable_by_the_owner(tiny_checkpoint, tmp_path):
    path = save_checkpoint(load_checkpoint(tiny_checkpoint), tmp_path / "m.pt")
    assert path == tmp_path / "m.pt"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644          # mkstemp alone would leave 0600
    os.chmod(path, 0o600)
    save_checkpoint(load_checkpoint(tiny_checkpoint), path)      # overwriting gives 0644 again
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_save_creates_folders_and_syncs(tiny_checkpoint, tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.fstat(fd).st_size), real_fsync(fd)))
    target = tmp_path / "a" / "b" / "m.pt"
    save_checkpoint(load_checkpoint(tiny_checkpoint), target)
    assert target.is_file() and synced == [target.stat().st_size]    # everything was written when synced
    assert sorted(p.name for p in target.parent.iterdir()) == ["m.pt"]      # no temp file left


def test_interrupted_save_leaves_no_file(tmp_path, monkeypatch):
    def interrupted(obj, f, *a, **k):
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"x": 1}, tmp_path / "m.pt")
    assert list(tmp_path.iterdir()) == []


def test_other_format_version(tiny_checkpoint, tmp_path):
    c = load_checkpoint(tiny_checkpoint)
    c["format_version"] = 2
    torch.save(c, tmp_path / "v2.pt")
    with pytest.raises(CheckpointError, match="format 2; this version reads format 1"):
        load_checkpoint(tmp_path / "v2.pt")


@pytest.mark.parametrize("missing", ["format_version", "model_args", "state_dict", "normalization"])
def test_each_required_key(tiny_checkpoint, tmp_path, missing):
    c = load_checkpoint(tiny_checkpoint)
    del c[missing]
    torch.save(c, tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match="not an mnist_core checkpoint"):
        load_checkpoint(tmp_path / "m.pt")


def test_not_a_dict(tmp_path):
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="not an mnist_core checkpoint"):
        load_checkpoint(tmp_path / "list.pt")


def test_a_folder_is_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path)


def test_last_and_best_weights(tiny_checkpoint):
    c = load_checkpoint(tiny_checkpoint)
    c["best"] = {**c["best"], "state_dict": {k: v + 1 if v.is_floating_point() else v
                                             for k, v in c["state_dict"].items()}}
    last, best = model_from_checkpoint(c), model_from_checkpoint(c, "best")
    assert not last.training and not best.training
    assert torch.equal(last.head.weight, c["state_dict"]["head.weight"])
    assert torch.equal(best.head.weight, c["state_dict"]["head.weight"] + 1)


def test_strict_loading(tiny_checkpoint, tmp_path):
    c = load_checkpoint(tiny_checkpoint)
    c["state_dict"] = {k: v for k, v in c["state_dict"].items() if k != "head.weight"}
    torch.save(c, tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match="another architecture"):
        load_checkpoint(tmp_path / "m.pt")


@pytest.mark.parametrize("ckpt,text", [
    ({"test_metrics": {"accuracy": 99.4812}, "epochs_completed": 15, "config": {"epochs": 15}, "status": "complete"},
     "99.48%, 15 epochs"),
    ({"test_metrics": {"accuracy": 97.0}, "epochs_completed": 2, "config": {"epochs": 5}, "status": "stopped"},
     "97.00%, stopped after 2/5 epochs"),
    ({"test_metrics": None, "epochs_completed": 3, "config": {"epochs": 3}, "status": "complete"},
     "accuracy unknown, 3 epochs"),
    ({"test_metrics": {"accuracy": 97.1}, "epochs_completed": 1, "config": {"epochs": 1}, "status": "complete"},
     "97.10%, 1 epoch"),
    ({}, "accuracy unknown"),
])
def test_describe(ckpt, text):
    assert describe(ckpt) == text


def test_loaded_dropout_matches_the_trained_one(tiny_checkpoint):
    c = load_checkpoint(tiny_checkpoint)
    c["model_args"] = {**c["model_args"], "dropout": 0.3}
    m = model_from_checkpoint(c)
    assert m.dropout == 0.3 and all(d.p == 0.3 for d in m.modules() if isinstance(d, torch.nn.Dropout))
