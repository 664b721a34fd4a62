"""An independent reference for the network view's numbers: plain PyTorch forward hooks on the model's
own modules during model(x) (not mnist_core/units.py's module-by-module pass)."""
from __future__ import annotations

import torch

HOOKED = {"conv1": lambda m: m.conv1[1], "conv2": lambda m: m.conv2[1], "transition": lambda m: m.trans,
          "conv3": lambda m: m.conv3[1], "conv4": lambda m: m.conv4[1], "conv5": lambda m: m.conv5[1],
          "conv6": lambda m: m.conv6[1], "out": lambda m: m.head}


@torch.inference_mode()
def hooked_stages(model, pixels, mean: float, std: float) -> dict[str, torch.Tensor]:
    """[N, 28, 28] images in [0, 1] -> {stage: [N, C, h, w]} (gap: [N, 16], out: [N, 10]) via hooks."""
    model.eval()
    got, handles = {}, []
    for name, module in HOOKED.items():
        handles.append(module(model).register_forward_hook(
            lambda _m, _i, out, name=name: got.__setitem__(name, out.detach().clone())))
    try:
        x = ((torch.as_tensor(pixels, dtype=torch.float32) - mean) / std).reshape(-1, 1, 28, 28)
        model(x)
    finally:
        for h in handles:
            h.remove()
    got["gap"] = got["conv6"].mean((2, 3))
    got["out"] = got["out"].flatten(1)
    return got
