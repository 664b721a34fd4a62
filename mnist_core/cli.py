"""`python -m mnist_core {train,evaluate,predict,export,finetune}` (console script: `mnist-core`)."""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
from dataclasses import fields
from pathlib import Path

from .checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint, save_checkpoint
from .config import LIMITS, ConfigError, TrainConfig, make_config
from .data import ENV_VAR, DataError, ensure_mnist, load_mnist, read_split, resolve_data_dir
from .export import ExportError

SHIPPED_CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "mnist_cnn.pt"
CANVAS_CHECKPOINT = SHIPPED_CHECKPOINT.with_name("mnist_canvas.pt")   # the model trained for the canvas (--drawn 1)
RUNS_DIR = SHIPPED_CHECKPOINT.parent / "runs"

_HELP = {
    "epochs": "passes over the training set", "lr": "SGD learning rate", "momentum": "SGD momentum",
    "step_size": "StepLR: epochs between lr decays", "gamma": "StepLR: lr multiplier at each decay",
    "rotation": "random rotation range, +/- degrees",
    "rotation_interpolation": "bilinear or nearest sampling for the rotation", "batch_size": "training batch size",
    "dropout": "dropout rate after each BN block", "seed": "seed for init, shuffling and augmentation",
    "max_train_samples": "use only the first N training images (default: all 60,000)",
    "device": "auto (cuda if present), cpu or cuda", "eval_batch_size": "batch size for evaluation",
    "cuda_graphs": "on CUDA, train with CUDA graphs of 32 steps each (the fast path)",
    "channels_last": "on CPU, use the channels-last (NHWC) memory layout",
    "drawn": "add this fraction of re-drawn twins (MNIST as the page's canvas draws it); 0.5 = the canvas model",
    "drawn_variants": "style sets of the re-drawn twins, one per epoch in turn",
}


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=None,
                   help=f"MNIST root holding MNIST/raw/ (default: ${ENV_VAR}, else ./data)")
    p.add_argument("--no-download", action="store_true", help="never try to download missing files")


def _config_args(p: argparse.ArgumentParser, defaults, helps: dict, types: dict | None = None,
                 limits: dict | None = None) -> None:
    """One flag per field of a config dataclass (--field-name, its default, its help and [low..high] when
    bounded); a bool is --x/--no-x, a tuple has no flag."""
    for f in fields(defaults):
        default = getattr(defaults, f.name)
        flag = "--" + f.name.replace("_", "-")
        if isinstance(default, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=helps[f.name])
        elif not isinstance(default, tuple):
            lim = f" [{limits[f.name][0]:g}..{limits[f.name][1]:g}]" if limits and f.name in limits else ""
            p.add_argument(flag, type=(types or {}).get(f.name, type(default)), default=default,
                           help=helps[f.name] + lim)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mnist_core",
                                     description="Train, evaluate and use the 7,416-parameter MNIST CNN.")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train with the recipe and write a checkpoint",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _config_args(t, TrainConfig(), _HELP, types={"max_train_samples": int}, limits=LIMITS)
    _data_args(t)
    t.add_argument("--out", default=None,
                   help="checkpoint to write when the run finishes (default: checkpoints/runs/train-<time>.pt; "
                        "written atomically, so an interrupted run leaves an existing file untouched)")
    t.add_argument("--quiet", action="store_true", help="no progress bars; one line per epoch")
    t.add_argument("--json", action="store_true", help="print each epoch's record as a JSON line")

    e = sub.add_parser("evaluate", help="test loss and accuracy of a checkpoint on the MNIST test set")
    e.add_argument("--checkpoint", default=str(SHIPPED_CHECKPOINT), help="checkpoint file (default: the shipped one)")
    _data_args(e)
    e.add_argument("--json", action="store_true",
                   help="print a JSON object (with per-class accuracy and confusion matrix)")
    e.add_argument("--drawn", action="store_true",
                   help="also on the drawn test set: the 10,000 test digits re-drawn as the page's canvas draws them "
                        "(traced once and cached in .cache/)")
    e.add_argument("--store", action="store_true",
                   help="with --drawn: write the drawn test metrics into the checkpoint (its weights stay as they are; "
                        "the model picker shows them)")

    pr = sub.add_parser("predict", help="classify image files (PNG/JPEG drawings or MNIST-style digits)")
    pr.add_argument("images", nargs="+", help="image files")
    pr.add_argument("--checkpoint", default=str(SHIPPED_CHECKPOINT), help="checkpoint file (default: the shipped one)")
    pr.add_argument("--json", action="store_true", help="print one JSON object per image")

    x = sub.add_parser("export", help="write a checkpoint as an ONNX file (needs the optional onnx packages)")
    x.add_argument("--checkpoint", default=str(SHIPPED_CHECKPOINT), help="checkpoint file (default: the shipped one)")
    x.add_argument("--out", default=None,
                   help="ONNX file to write (default: ./<checkpoint name>.onnx; written atomically)")
    _finetune_args(sub)
    return parser


_TEACH_HELP = {
    "steps": "SGD steps", "lr": "SGD learning rate at the start (cosine decay to 0)", "momentum": "SGD momentum",
    "batch": "images per step (yours and MNIST's)", "mnist_fraction": "share of MNIST digits in a batch",
    "renders": "augmented renderings of your drawings, all together", "rotation": "random rotation, +/- degrees",
    "slant": "+/- slant of a re-drawn drawing", "aspect": "+/- relative width", "scale": "+/- relative size",
    "shift": "+/- move, fraction of the canvas", "freeze_bn": "keep BatchNorm's statistics (MNIST's)",
    "distill": "weight of holding MNIST digits to the base model's answers",
    "seed": "seed of the held-aside split, renders, batches and rotations",
}


def _finetune_args(sub) -> None:
    from .teach import TeachConfig

    f = sub.add_parser("finetune", help="teach a model your handwriting: fine-tune it on your drawings mixed "
                                        "with MNIST", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    f.add_argument("--drawings", required=True,
                   help="your drawings: strokes.jsonl (one {strokes, label} a line) or the My digits zip")
    f.add_argument("--checkpoint", default=str(SHIPPED_CHECKPOINT), help="the model to teach")
    f.add_argument("--out", default=None, help="checkpoint to write (default: checkpoints/runs/teach-<time>.pt; "
                                               "written atomically)")
    _config_args(f, TeachConfig(), _TEACH_HELP)
    _data_args(f)
    f.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (a teach is small: 1 is what its time target is measured on)")
    f.add_argument("--quiet", action="store_true", help="no progress bar")
    f.add_argument("--json", action="store_true", help="print the report as a JSON object")


def cmd_train(a: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .train import Trainer

    cfg = make_config(**{f.name: getattr(a, f.name) for f in fields(TrainConfig)})
    out = Path(a.out) if a.out else RUNS_DIR / f"train-{_dt.datetime.now():%Y%m%d-%H%M%S}.pt"
    train, test = load_mnist(a.data_dir, download=not a.no_download)
    bar = None

    def on_batch(done: int, total: int, loss: float, acc: float) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=f"epoch {len(trainer.history) + 1}/{cfg.epochs}", unit="batch",
                       leave=False, dynamic_ncols=True)
        bar.update(done - bar.n)
        bar.set_postfix(loss=f"{loss:.4f}", acc=f"{acc:.2f}%")

    trainer = Trainer(cfg, train, test, on_batch=None if a.quiet else on_batch, progress_bars=not a.quiet)
    twins = f" (of them {len(trainer.twins[0]):,} re-drawn)" if trainer.twins else ""
    print(f"training on {len(trainer.train_batches.labels):,} images{twins}, testing on {len(test):,}, "
          f"device {trainer.device}", file=sys.stderr)
    try:
        for r in trainer.run():
            if bar is not None:
                bar.close()
                bar = None
            line = (f"epoch {r.epoch:2d}/{r.epochs}  lr {r.lr:.5f}  "
                    f"train loss {r.train_loss:.4f} acc {r.train_accuracy:.2f}%  "
                    f"test loss {r.test_loss:.4f} acc {r.test_accuracy:.2f}%  {r.seconds:.1f}s")
            print(json.dumps(r.as_dict()) if a.json else line, flush=True)
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        print(f"interrupted after {trainer.epochs_completed} finished epochs; {out} was not written", file=sys.stderr)
        return 130
    save_checkpoint(trainer.checkpoint(), out)
    print(f"wrote {out} (test accuracy {trainer.test_metrics['accuracy']:.2f}%)", file=sys.stderr)
    return 0


def cmd_evaluate(a: argparse.Namespace) -> int:
    import torch

    from .batches import TensorBatches
    from .evaluate import evaluate

    ckpt = load_checkpoint(a.checkpoint)
    model = model_from_checkpoint(ckpt)
    norm = ckpt["normalization"]
    test = read_split(ensure_mnist(resolve_data_dir(a.data_dir), download=not a.no_download), train=False)
    with torch.inference_mode():
        m = evaluate(model, TensorBatches(test.images, test.labels, TrainConfig().eval_batch_size, shuffle=False,
                                          mean=norm["mean"], std=norm["std"]))
    if a.drawn:
        _evaluate_drawn(a, ckpt, model, test)
    if a.json:
        print(json.dumps({"checkpoint": str(a.checkpoint), "test_loss": m["loss"], "test_accuracy": m["accuracy"],
                          "correct": m["correct"], "total": m["total"], "per_class_accuracy": m["per_class_accuracy"],
                          "confusion_matrix": m["confusion_matrix"]}))
    else:
        print(f"{a.checkpoint}: test loss {m['loss']:.4f}, accuracy {m['accuracy']:.2f}% ({m['correct']}/{m['total']})")
        print("per class: " + "  ".join(f"{d}:{v:.1f}" for d, v in enumerate(m["per_class_accuracy"])))
    return 0


def _evaluate_drawn(a: argparse.Namespace, ckpt: dict, model, test) -> None:
    import torch

    from .batches import TensorBatches
    from .evaluate import evaluate
    from .redraw import DRAWN_TEST_SEED, drawn

    twin, _ = drawn(test, DRAWN_TEST_SEED, progress=not a.json, data_root=resolve_data_dir(a.data_dir))
    norm = ckpt["normalization"]
    with torch.inference_mode():
        d = evaluate(model, TensorBatches(twin.images, twin.labels, TrainConfig().eval_batch_size, shuffle=False,
                                          mean=norm["mean"], std=norm["std"]))
    print(f"{a.checkpoint}: drawn test set accuracy {d['accuracy']:.2f}% ({d['correct']}/{d['total']})",
          file=sys.stderr if a.json else sys.stdout)
    if a.store:
        save_checkpoint({**ckpt, "drawn_metrics": d}, a.checkpoint)


def cmd_predict(a: argparse.Namespace) -> int:
    from .predict import Predictor
    from .preprocess import PreprocessError, load_image_file

    predictor = Predictor.from_file(a.checkpoint)
    status = 0
    for path in a.images:
        try:
            result = predictor.predict(load_image_file(path))
        except PreprocessError as exc:
            print(json.dumps({"image": path, "error": str(exc)}) if a.json else f"{path}: error: {exc}")
            status = 1
            continue
        if a.json:
            print(json.dumps({"image": path, **result.as_dict()}))
        elif result.empty:
            print(f"{path}: empty (no digit found)")
        else:
            top = result.top(3)
            print(f"{path}: {top[0][0]} ({top[0][1]:.1%})" + ("  [not sure]" if result.unsure else "")
                  + "   then " + ", ".join(f"{d} {p:.1%}" for d, p in top[1:]))
    return status


def cmd_export(a: argparse.Namespace) -> int:
    from .export import export_onnx

    ckpt = load_checkpoint(a.checkpoint)
    out = export_onnx(ckpt, a.out or Path(a.checkpoint).with_suffix(".onnx").name)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KB; input 'image' [N,1,28,28] normalized with "
          f"mean {ckpt['normalization']['mean']}, std {ckpt['normalization']['std']})", file=sys.stderr)
    return 0


def cmd_finetune(a: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .digitset import DigitSetError, from_upload
    from .teach import TeachConfig, TeachError, finetune, split_held

    try:
        cfg = TeachConfig.from_dict({fl.name: getattr(a, fl.name) for fl in fields(TeachConfig)
                                     if hasattr(a, fl.name)})
        drawings = from_upload(a.drawings)
        split_held(drawings, cfg.seed)          # too few: refused before anything is loaded
    except (TeachError, DigitSetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(max(1, a.threads))
    base = load_checkpoint(a.checkpoint)
    out = Path(a.out) if a.out else RUNS_DIR / f"teach-{_dt.datetime.now():%Y%m%d-%H%M%S}.pt"
    train, test = load_mnist(a.data_dir, download=not a.no_download)
    bar = None if a.quiet else tqdm(total=cfg.steps, desc="teaching", unit="step", leave=False, dynamic_ncols=True)

    def on_progress(done: int, total: int, loss: float, acc: float) -> None:
        bar.update(done - bar.n)
        bar.set_postfix(loss=f"{loss:.4f}", acc=f"{acc:.2f}%")

    try:
        ckpt, report = finetune(base, drawings, train, test, cfg, on_progress=None if bar is None else on_progress,
                                base_name=Path(a.checkpoint).stem)
    except TeachError as exc:                   # the base model's fault (its normalization, say)
        bar is not None and bar.close()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    bar is not None and bar.close()
    save_checkpoint(ckpt, out)
    if a.json:
        print(json.dumps({"checkpoint": str(out), **report}))
    else:
        print(f"taught {report['taught']} drawings, held {report['held']} aside, in {report['seconds']:.1f}s")
        print(f"held-aside drawings: {report['held_before']:.1f}% -> {report['held_after']:.1f}% right")
        print(f"MNIST test: {report['mnist_before']:.2f}% -> {report['mnist_after']:.2f}%")
    print(f"wrote {out}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    try:
        commands = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict, "export": cmd_export,
                    "finetune": cmd_finetune}
        return commands[a.command](a)
    except (ConfigError, DataError, CheckpointError, ExportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
