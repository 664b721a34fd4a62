"""evaluate() checked exactly against a model whose answers the test chooses."""
import math

import numpy as np
import pytest
import torch

from mnist_core.batches import TensorBatches
from mnist_core.evaluate import evaluate


class Oracle(torch.nn.Module):
    """Answers with the class written in pixel (0, 0) of each input, with a chosen confidence.

    Its output is log_softmax of logits that put `margin` on the chosen class, so the NLL of every
    sample is known in closed form; it has one parameter only so that train()/eval() mean something.
    """

    def __init__(self, margin: float = 3.0) -> None:
        super().__init__()
        self.margin = margin
        self.dummy = torch.nn.Parameter(torch.zeros(()))
        self.modes: list[bool] = []

    def forward(self, x):
        self.modes.append(self.training)
        pred = x[:, 0, 0, 0].long()
        logits = torch.nn.functional.one_hot(pred, 10).float() * self.margin + self.dummy
        return torch.log_softmax(logits, 1)


def _batches(preds, labels, sizes):
    x = torch.zeros(len(preds), 1, 28, 28)
    x[:, 0, 0, 0] = torch.tensor(preds, dtype=torch.float)
    y = torch.tensor(labels)
    out, start = [], 0
    for s in sizes:
        out.append((x[start:start + s], y[start:start + s]))
        start += s
    assert start == len(preds)
    return out


def _expected_nll(margin, right):
    # log-softmax of a one-hot * margin: the chosen class has log p = margin - log(e^margin + 9)
    z = math.log(math.exp(margin) + 9)
    return -(margin - z) if right else z


# true labels and the oracle's answers: not symmetric, some classes always right, some never, one absent
LABELS = [0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 4, 5, 5, 6, 7, 7, 8, 8, 8, 8, 0, 1]
PREDS = [0, 0, 7, 1, 4, 2, 2, 2, 3, 3, 9, 5, 6, 6, 1, 7, 8, 8, 8, 0, 0, 1]


def test_counts_per_class_and_confusion_exactly():
    model = Oracle()
    m = evaluate(model, _batches(PREDS, LABELS, [5, 7, 1, 9]))
    expected = np.zeros((10, 10), int)
    for t, p in zip(LABELS, PREDS, strict=True):
        expected[t, p] += 1                      # rows = true class, columns = prediction
    assert m["confusion_matrix"] == expected.tolist()
    right = sum(t == p for t, p in zip(LABELS, PREDS, strict=True))
    assert m["correct"] == right == 15 and m["total"] == len(LABELS) == 22
    assert m["accuracy"] == 100.0 * 15 / 22
    per_class = []
    for c in range(10):
        n = LABELS.count(c)
        per_class.append(round(100.0 * sum(t == p == c for t, p in zip(LABELS, PREDS, strict=True)) / n, 4)
                         if n else None)
    assert [None if math.isnan(v) else v for v in m["per_class_accuracy"]] == per_class
    assert math.isnan(m["per_class_accuracy"][9])   # no sample of class 9: NaN, not 0 or 100
    assert m["per_class_accuracy"][0] == 75.0 and m["per_class_accuracy"][3] == 100.0
    assert m["per_class_accuracy"][8] == 75.0 and m["per_class_accuracy"][4] == 0.0


def test_loss_is_the_mean_nll():
    model = Oracle(margin=2.5)
    m = evaluate(model, _batches(PREDS, LABELS, [22]))
    want = sum(_expected_nll(2.5, t == p) for t, p in zip(LABELS, PREDS, strict=True)) / len(LABELS)
    assert m["loss"] == pytest.approx(want, rel=1e-6)


def test_batching_does_not_change_anything():
    a = evaluate(Oracle(), _batches(PREDS, LABELS, [22]))
    b = evaluate(Oracle(), _batches(PREDS, LABELS, [1] * 22))
    assert a["confusion_matrix"] == b["confusion_matrix"] and a["correct"] == b["correct"]
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-6)


def test_all_wrong_and_all_right():
    labels = [i % 10 for i in range(30)]
    wrong = evaluate(Oracle(), _batches([(t + 1) % 10 for t in labels], labels, [30]))
    assert wrong["accuracy"] == 0.0 and wrong["correct"] == 0 and wrong["per_class_accuracy"] == [0.0] * 10
    right = evaluate(Oracle(), _batches(labels, labels, [30]))
    assert right["accuracy"] == 100.0 and right["correct"] == 30 and right["per_class_accuracy"] == [100.0] * 10
    assert right["confusion_matrix"] == (3 * np.eye(10, dtype=int)).tolist()


@pytest.mark.parametrize("training", [True, False])
def test_runs_in_eval_mode_and_restores_the_mode(training):
    model = Oracle()
    model.train(training)
    evaluate(model, _batches(PREDS, LABELS, [11, 11]))
    assert model.modes == [False, False]     # every forward in eval mode
    assert model.training is training


def test_no_gradients_are_recorded():
    model = Oracle()
    x, y = _batches(PREDS, LABELS, [22])[0]
    seen = []
    model.register_forward_hook(lambda m, i, o: seen.append(torch.is_grad_enabled()))
    evaluate(model, [(x, y)])
    assert seen == [False] and model.dummy.grad is None


def test_no_data_is_an_error():
    with pytest.raises(ValueError, match="no data"):
        evaluate(Oracle(), [])


def test_other_number_of_classes():
    class Three(torch.nn.Module):
        def forward(self, x):
            return torch.log_softmax(torch.nn.functional.one_hot(x[:, 0, 0, 0].long(), 3).float() * 4, 1)

    m = evaluate(Three(), _batches([0, 1, 2, 2], [0, 1, 1, 2], [4]), num_classes=3)
    assert m["confusion_matrix"] == [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
    assert m["per_class_accuracy"] == [100.0, 50.0, 100.0]


def test_on_tensor_batches_in_order():
    # the pipeline the trainer and CLI use: normalized, unshuffled, unrotated; the oracle reads a pixel
    # written into the uint8 image, so every answer depends on the right image reaching the model
    labels = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5])
    preds = torch.tensor([3, 1, 4, 0, 5, 9, 2, 6, 5, 8, 5])
    imgs = torch.zeros(len(labels), 28, 28, dtype=torch.uint8)
    imgs[:, 0, 0] = preds.to(torch.uint8)

    class Denorm(Oracle):
        def forward(self, x):
            return super().forward(torch.round(x * 0.3081 * 255 + 0.1307 * 255))

    m = evaluate(Denorm(), TensorBatches(imgs, labels, 4, shuffle=False))
    assert m["correct"] == 9 and m["total"] == 11
    assert m["confusion_matrix"][1][0] == 1 and m["confusion_matrix"][3][8] == 1
