"""`python -m mnist_core`: what docs/training.md promises about train, evaluate and predict."""
import json
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from mnist_core import cli
from mnist_core import train as train_mod
from mnist_core.checkpoint import load_checkpoint, save_checkpoint
from mnist_core.config import LIMITS, TrainConfig
from tests.conftest import ROOT

QUICK = ["--epochs", "1", "--batch-size", "32", "--max-train-samples", "256", "--device", "cpu", "--quiet",
         "--no-download"]


def _help(capsys, monkeypatch, *argv):
    monkeypatch.setenv("COLUMNS", "250")
    with pytest.raises(SystemExit) as e:
        cli.build_parser().parse_args([*argv, "--help"])
    assert e.value.code == 0
    return " ".join(capsys.readouterr().out.split())     # argparse wraps lines: compare on single spaces


def test_train_help_shows_every_range(capsys, monkeypatch):
    text = _help(capsys, monkeypatch, "train")
    for name, (lo, hi) in LIMITS.items():
        flag = "--" + name.replace("_", "-")
        assert flag in text, flag
        assert f"[{lo:g}..{hi:g}]" in text, (name, lo, hi)
    assert "[1..50]" in text and "[1..4096]" in text and "[1..60000]" in text   # as docs/training.md's limits say


def test_train_help_shows_the_recipe_defaults(capsys, monkeypatch):
    text = _help(capsys, monkeypatch, "train")
    for flag, default in [("--batch-size", "64"), ("--dropout", "0.0"), ("--rotation-interpolation", "nearest"),
                          ("--seed", "1"), ("--epochs", "15"), ("--lr", "0.02"), ("--momentum", "0.9"),
                          ("--step-size", "6"), ("--gamma", "0.1"), ("--rotation", "7.0"),
                          ("--eval-batch-size", "500"), ("--device", "auto")]:
        metavar = flag[2:].replace("-", "_").upper()
        assert re.search(rf"{flag} {metavar} (?:(?! --).)*\(default: {re.escape(default)}\)", text), (flag, default)
    assert "checkpoints/runs/" in text and "--out" in text


def test_train_parses_to_the_recipe():
    a = cli.build_parser().parse_args(["train"])
    assert {f: getattr(a, f) for f in TrainConfig().to_dict()} == TrainConfig().to_dict()
    assert (a.batch_size, a.dropout, a.rotation_interpolation, a.seed) == (64, 0.0, "nearest", 1)
    assert a.out is None and a.data_dir is None and not a.quiet and not a.json and not a.no_download
    b = cli.build_parser().parse_args(["train", "--no-channels-last", "--max-train-samples", "5", "--lr", "0.1"])
    assert b.channels_last is False and b.max_train_samples == 5 and b.lr == 0.1


def test_default_output_folder_is_checkpoints_runs():
    assert cli.RUNS_DIR == ROOT / "checkpoints" / "runs"
    assert cli.SHIPPED_CHECKPOINT == ROOT / "checkpoints" / "mnist_cnn.pt"


def test_train_writes_out_file(synthetic_root, tmp_path, capsys):
    out = tmp_path / "sub" / "m.pt"
    assert cli.main(["train", "--data-dir", str(synthetic_root), "--out", str(out), "--seed", "4", *QUICK]) == 0
    c = load_checkpoint(out)
    assert c["status"] == "complete" and len(c["history"]) == 1
    assert c["config"] == TrainConfig(epochs=1, batch_size=32, max_train_samples=256, device="cpu", seed=4).to_dict()
    io = capsys.readouterr()
    assert io.out.startswith("epoch  1/1  lr 0.02000  train loss ") and io.out.count("\n") == 1
    assert f"wrote {out}" in io.err and "training on 256 images, testing on 300" in io.err


def test_train_without_out_goes_to_the_runs_folder(synthetic_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "RUNS_DIR", tmp_path / "runs")
    assert cli.main(["train", "--data-dir", str(synthetic_root), "--json", *QUICK]) == 0
    (written,) = (tmp_path / "runs").iterdir()
    assert written.name.startswith("train-") and written.suffix == ".pt"
    record = json.loads(capsys.readouterr().out)
    assert load_checkpoint(written)["history"] == [record]


def test_the_file_is_written_only_when_the_run_ends(synthetic_root, tmp_path, monkeypatch):
    out = tmp_path / "m.pt"
    seen_during_run = []
    real_run = train_mod.Trainer.run

    def watched(self):
        for record in real_run(self):
            yield record
            seen_during_run.append(sorted(p.name for p in tmp_path.iterdir()))   # after the CLI took the record

    monkeypatch.setattr(train_mod.Trainer, "run", watched)
    args = ["train", "--data-dir", str(synthetic_root), "--out", str(out), *QUICK]
    args[args.index("--epochs") + 1] = "3"
    assert cli.main(args) == 0
    assert seen_during_run == [[], [], []] and out.is_file()
    assert load_checkpoint(out)["epochs_completed"] == 3


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_an_interrupted_or_failed_run_writes_nothing(synthetic_root, tmp_path, monkeypatch, capsys, error,
                                                     tiny_checkpoint):
    out = tmp_path / "m.pt"
    save_checkpoint(load_checkpoint(tiny_checkpoint), out)       # an older model at the same path
    before = out.read_bytes()
    real_run = train_mod.Trainer.run

    def breaks_after_one_epoch(self):
        yield next(real_run(self))
        raise error("stop")

    monkeypatch.setattr(train_mod.Trainer, "run", breaks_after_one_epoch)
    args = ["train", "--data-dir", str(synthetic_root), "--out", str(out), *QUICK]
    args[args.index("--epochs") + 1] = "2"
    if error is KeyboardInterrupt:
        assert cli.main(args) == 130
        assert "interrupted after 1 finished epochs" in capsys.readouterr().err
    else:
        with pytest.raises(RuntimeError):
            cli.main(args)
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


def test_bad_settings_are_refused_before_anything_runs(tmp_path, capsys):
    out = tmp_path / "m.pt"
    assert cli.main(["train", "--epochs", "0", "--out", str(out), "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: epochs must be") and "Traceback" not in err and not out.exists()
    assert cli.main(["train", "--device", "tpu", "--out", str(out), "--data-dir", str(tmp_path)]) == 2
    assert "device must be one of" in capsys.readouterr().err


def test_evaluate_json_matches_evaluate(synthetic_root, tiny_checkpoint, capsys):
    assert cli.main(["evaluate", "--checkpoint", str(tiny_checkpoint), "--data-dir", str(synthetic_root),
                     "--no-download", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    stored = load_checkpoint(tiny_checkpoint)["test_metrics"]    # the trainer evaluated the same test set
    assert r["checkpoint"] == str(tiny_checkpoint) and r["total"] == 300
    assert r["test_accuracy"] == stored["accuracy"] and r["correct"] == stored["correct"]
    assert r["confusion_matrix"] == stored["confusion_matrix"]
    assert r["per_class_accuracy"] == stored["per_class_accuracy"]
    assert r["test_loss"] == pytest.approx(stored["loss"], rel=1e-5)
    assert r["correct"] == sum(np.diag(r["confusion_matrix"])) and np.sum(r["confusion_matrix"]) == r["total"]


def test_evaluate_text(synthetic_root, tiny_checkpoint, capsys):
    assert cli.main(["evaluate", "--checkpoint", str(tiny_checkpoint), "--data-dir", str(synthetic_root),
                     "--no-download"]) == 0
    acc = load_checkpoint(tiny_checkpoint)["test_metrics"]["accuracy"]
    first, second = capsys.readouterr().out.splitlines()
    assert first.startswith(f"{tiny_checkpoint}: test loss ") and f"accuracy {acc:.2f}% (" in first
    assert first.endswith("/300)") and second.startswith("per class: 0:") and second.count(":") == 11


def test_evaluate_uses_the_checkpoints_normalization(synthetic_root, tiny_checkpoint, tmp_path, capsys):
    c = load_checkpoint(tiny_checkpoint)
    c["normalization"] = {"mean": 0.9, "std": 5.0}
    save_checkpoint(c, tmp_path / "n.pt")
    cli.main(["evaluate", "--checkpoint", str(tmp_path / "n.pt"), "--data-dir", str(synthetic_root), "--no-download",
              "--json"])
    assert json.loads(capsys.readouterr().out)["test_loss"] != pytest.approx(c["test_metrics"]["loss"], rel=1e-3)


def test_evaluate_bad_checkpoint(tmp_path, capsys):
    (tmp_path / "x.pt").write_bytes(b"nope")
    assert cli.main(["evaluate", "--checkpoint", str(tmp_path / "x.pt"), "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not a readable checkpoint" in err and err.count("\n") == 1


def test_predict(tiny_checkpoint, tmp_path, capsys):
    from tests.drawing import stroke_digit
    Image.fromarray(stroke_digit("1", canvas=200)).save(tmp_path / "one.png")
    Image.fromarray(np.full((100, 100), 255, np.uint8)).save(tmp_path / "blank.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    paths = [str(tmp_path / n) for n in ("one.png", "blank.png", "bad.png")]
    assert cli.main(["predict", "--checkpoint", str(tiny_checkpoint), "--json", *paths]) == 1   # one bad file
    one, blank, bad = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert one["image"] == paths[0] and not one["empty"] and len(one["probabilities"]) == 10
    assert blank["empty"] and blank["digit"] is None
    assert bad["image"] == paths[2] and bad["error"]
    assert cli.main(["predict", "--checkpoint", str(tiny_checkpoint), *paths[:2]]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{paths[0]}: {one['digit']} (") and "then" in lines[0]
    assert lines[1] == f"{paths[1]}: empty (no digit found)"


def test_module_entry_point_help():
    out = subprocess.run([sys.executable, "-m", "mnist_core", "train", "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and "--max-train-samples" in out.stdout and out.stderr == ""


# ------------------------------------------------------------------------------ finetune (issue 33)
TEACH_QUICK = ["--steps", "12", "--renders", "40", "--batch", "16", "--no-download"]


def _jsonl(tmp_path, drawings) -> str:
    path = tmp_path / "strokes.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in drawings))
    return str(path)


def test_finetune_teaches_and_writes_a_run(synthetic_root, tiny_checkpoint, tmp_path, capsys):
    from mnist_core.digitset import to_zip
    from tests import handwriting
    drawings = handwriting.drawings("boxy", 3, seed=2)
    out = tmp_path / "taught.pt"
    args = ["finetune", "--checkpoint", str(tiny_checkpoint), "--data-dir", str(synthetic_root), *TEACH_QUICK]
    assert cli.main([*args, "--drawings", _jsonl(tmp_path, drawings), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    ck = load_checkpoint(out)
    assert report["checkpoint"] == str(out) and (report["taught"], report["held"]) == (20, 10)
    assert ck["teach"] == {k: v for k, v in report.items() if k != "checkpoint"}
    assert ck["base"] == "tiny" and ck["teach_config"]["steps"] == 12
    # the same drawings as the My digits zip, text report, default output folder
    (tmp_path / "mine.zip").write_bytes(to_zip(drawings))
    runs = tmp_path / "runs"
    cli.RUNS_DIR, old = runs, cli.RUNS_DIR
    try:
        assert cli.main([*args, "--drawings", str(tmp_path / "mine.zip"), "--quiet"]) == 0
    finally:
        cli.RUNS_DIR = old
    text = capsys.readouterr()
    assert "held-aside drawings:" in text.out and "MNIST test:" in text.out
    written = list(runs.glob("teach-*.pt"))
    assert len(written) == 1 and f"wrote {written[0]}" in text.err


def test_finetune_refuses_bad_drawings_with_one_line(synthetic_root, tiny_checkpoint, tmp_path, capsys):
    from tests import handwriting
    out = tmp_path / "x.pt"
    args = ["finetune", "--checkpoint", str(tiny_checkpoint), "--data-dir", str(synthetic_root), "--out", str(out),
            *TEACH_QUICK]
    for drawings, words in [([{"strokes": {"strokes": []}, "label": 3}], "drawing 1: nothing drawn"),
                            (handwriting.drawings("plain", 1, digits=[5]), "too few drawings of 5")]:
        assert cli.main([*args, "--drawings", _jsonl(tmp_path, drawings)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and words in err and err.count("\n") == 1, err
    assert cli.main([*args, "--drawings", str(tmp_path / "missing.jsonl")]) == 2
    assert "cannot be read" in capsys.readouterr().err
    assert cli.main([*args, "--drawings", _jsonl(tmp_path, handwriting.drawings("plain", 2)), "--steps", "0"]) == 2
    assert "teach setting steps" in capsys.readouterr().err
    assert not out.exists()


def test_finetune_help(capsys, monkeypatch):
    from mnist_core.teach import TeachConfig
    text = _help(capsys, monkeypatch, "finetune")
    for flag in ("--drawings", "--checkpoint", "--out", "--steps", "--lr", "--mnist-fraction", "--data-dir"):
        assert flag in text, flag
    assert f"(default: {TeachConfig().steps})" in text
