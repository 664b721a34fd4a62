import os

import pytest
import torch

from mnist_core.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint, save_checkpoint


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
    (b"", "empty"),
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
    torch.save({"format_version": 1, "model_args": {}, "state_dict": _Evil(), "normalization": {}}, tmp_path / "evil.pt",
               pickle_protocol=2)
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "evil.pt")
    assert not (tmp_path / "PWNED_BY_PICKLE").exists()


def test_failed_save_keeps_previous_file_and_leaves_no_temp(tiny_checkpoint, tmp_path, monkeypatch):
    target = tmp_path / "model.pt"
    save_checkpoint(load_checkpoint(tiny_checkpoint), target)
    before = target.read_bytes()

    def full_disk(obj, f, *a, **k):
        f.write(b"partial bytes")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint({"anything": 1}, target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
