"""Pure evaluation: no state changes beyond putting the model in eval mode for the call."""
from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F


@torch.no_grad()
def evaluate(model: torch.nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
             num_classes: int = 10) -> dict:
    """Mean NLL loss, accuracy (%), per-class accuracy (%) and confusion matrix (rows = true class).

    `batches` yields (normalized inputs, labels) on the model's device, e.g. TensorBatches with
    shuffle=False and rotation=0. The model's train/eval mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    loss_sum, n = 0.0, 0
    confusion = None
    for x, y in batches:
        out = model(x)
        loss_sum += F.nll_loss(out, y, reduction="sum").item()
        pred = out.argmax(1)
        idx = y * num_classes + pred
        counts = torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)
        confusion = counts if confusion is None else confusion + counts
        n += len(y)
    model.train(was_training)
    if n == 0:
        raise ValueError("evaluate() got no data")
    return metrics_from_confusion(loss_sum, confusion.cpu())


def metrics_from_confusion(loss_sum: float, confusion: torch.Tensor) -> dict:
    """The evaluation dict from the summed NLL and the confusion matrix (rows = true class; CPU tensor)."""
    n = int(confusion.sum().item())
    correct = confusion.diag()
    per_class_total = confusion.sum(1)
    per_class = torch.where(per_class_total > 0, 100.0 * correct / per_class_total.clamp(min=1),
                            torch.full_like(correct, float("nan"), dtype=torch.float))
    return {
        "loss": loss_sum / n,
        "accuracy": 100.0 * correct.sum().item() / n,
        "correct": int(correct.sum().item()),
        "total": n,
        "per_class_accuracy": [round(float(v), 4) for v in per_class],
        "confusion_matrix": confusion.tolist(),
    }
