"""Train K seeds of the recipe at once, as one batched network (for seed sweeps).

Model k of the K is exactly the network `Trainer` builds for seed k: the K networks are laid side
by side as one network whose convolutions have K groups and whose BatchNorm layers have K*C
channels (model k owns channels k*C..(k+1)*C-1 of every layer). A batch is [B, K, 28, 28]: channel
k holds model k's images. Nothing mixes across groups: a grouped conv, a per-channel BatchNorm,
ReLU and pooling keep the models apart, the loss is the sum of the K models' mean losses (so each
model gets its own gradient), and SGD with momentum acts element by element.

Each model also sees its own data, drawn exactly as the single `Trainer` with that seed draws it:
weights from `torch.manual_seed(seed)` + `Net(...)`, and one `torch.Generator` per seed that
gives each epoch's permutation (`randperm`) and then, batch by batch, the rotation angles (`rand`),
in the same order as `TensorBatches`. So with dropout 0 (the recipe) model k follows the single
run of seed k up to float rounding (tests/test_multi.py). Dropout > 0 is supported, but its masks
come from one shared generator, so it matches the single runs in distribution only.

On a 2-core CPU, 8 seeds train several times faster this way than one after the other
(benchmarks/multi_speed.py), because one small network leaves most of each kernel idle.

Sweep-only options that `Trainer` does not have (candidates for the free parts of the recipe):
`bn_momentum`, `bn_eps` and `init`. With their defaults the result is the recipe's.
"""
from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .arch import GEOMETRY, STAGES, Geometry, Stage
from .config import MNIST_MEAN, MNIST_STD, ConfigError, TrainConfig
from .data import Split
from .model import Net

INITS = ("default", "kaiming_normal", "kaiming_uniform_relu")


def _grouped_stage(k: int, stage: Stage, shape: Geometry, dropout: float, momentum: float,
                   eps: float) -> nn.Module:
    """model._stage with K groups: the same layers in the same order, so state-dict keys match Net's."""
    layers: list[nn.Module] = []
    if stage.kernel:
        layers.append(nn.Conv2d(k * shape.cin, k * stage.channels, stage.kernel, bias=False, groups=k))
    if stage.relu:
        layers.append(nn.ReLU())
    if stage.batchnorm:
        layers += [nn.BatchNorm2d(k * stage.channels, eps=eps, momentum=momentum), nn.Dropout(dropout)]
    if stage.pool == "max2":
        layers.append(nn.MaxPool2d(2))
    elif stage.pool == "mean":
        layers.append(nn.AvgPool2d(shape.side_in))
    return layers[0] if len(layers) == 1 else nn.Sequential(*layers)


class MultiNet(nn.Module):
    """K copies of `model.Net`, side by side in the channel dimension. Input [B, K, 28, 28],
    output log-probabilities [B, K, 10]."""

    def __init__(self, k: int, dropout: float = 0.0, bn_momentum: float = 0.1, bn_eps: float = 1e-5) -> None:
        super().__init__()
        self.k = k
        for stage, shape in zip(STAGES, GEOMETRY, strict=True):   # arch.py: the one description
            self.add_module(stage.name, _grouped_stage(k, stage, shape, dropout, bn_momentum, bn_eps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in STAGES:
            x = getattr(self, stage.name)(x)
        return F.log_softmax(x.reshape(x.shape[0], self.k, -1), dim=2)

    @torch.no_grad()
    def load_singles(self, nets: Sequence[nn.Module]) -> None:
        """Copy K single networks' weights and BatchNorm statistics in (model k = nets[k])."""
        if len(nets) != self.k:
            raise ValueError(f"expected {self.k} networks, got {len(nets)}")
        states = [n.state_dict() for n in nets]
        for key, value in self.state_dict().items():
            if key.endswith("num_batches_tracked"):
                value.copy_(states[0][key])
            else:
                value.copy_(torch.cat([s[key] for s in states], 0))

    def single_state_dict(self, k: int) -> dict:
        """Model k's weights as a plain `Net` state dict (contiguous CPU tensors, loadable anywhere)."""
        out = {}
        for key, value in self.state_dict().items():
            value = value.detach()
            if not key.endswith("num_batches_tracked"):
                n = value.shape[0] // self.k
                value = value[k * n:(k + 1) * n]
            out[key] = value.cpu().clone(memory_format=torch.contiguous_format)
        return out


def _init_single(net: Net, init: str) -> None:
    """Re-initialize the conv weights of one seed's network (BatchNorm stays weight 1, bias 0)."""
    if init == "default":
        return
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            if init == "kaiming_normal":
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            elif init == "kaiming_uniform_relu":
                nn.init.kaiming_uniform_(m.weight, mode="fan_in", nonlinearity="relu")


class MultiTrainer:
    """Train one network per seed of `seeds`, all with the recipe `cfg` (its `seed` is ignored).

    `run()` yields, per epoch, a list of K records with the fields of `train.EpochMetrics` (the
    `seconds` are the shared wall time of the epoch); `history[k]` collects model k's records.
    """

    def __init__(self, cfg: TrainConfig, seeds: Sequence[int], train: Split, test: Split, *,
                 bn_momentum: float = 0.1, bn_eps: float = 1e-5, init: str = "default",
                 dtype: torch.dtype = torch.float32) -> None:
        from .train import resolve_device
        seeds = [int(s) for s in seeds]
        if not seeds:
            raise ConfigError("give at least one seed")
        if init not in INITS:
            raise ConfigError(f"init must be one of {', '.join(INITS)}, got {init!r}")
        if not (0.0 < bn_momentum <= 1.0) or not (0.0 < bn_eps < 1.0):
            raise ConfigError(f"bn_momentum must be in (0, 1] and bn_eps in (0, 1), got {bn_momentum}, {bn_eps}")
        self.cfg, self.seeds, self.k = cfg, seeds, len(seeds)
        self.device = resolve_device(cfg.device)
        if cfg.max_train_samples is not None:
            train = Split(train.images[: cfg.max_train_samples], train.labels[: cfg.max_train_samples])
        if len(train) == 0 or len(test) == 0:
            raise ConfigError("the training and test sets must not be empty")
        self.options = {"bn_momentum": bn_momentum, "bn_eps": bn_eps, "init": init}
        singles = []
        for s in seeds:  # the same global-RNG draws as Trainer.__init__ for that seed
            torch.manual_seed(s)
            net = Net(dropout=cfg.dropout)
            _init_single(net, init)
            singles.append(net)
        self.layout = (torch.channels_last if cfg.channels_last and self.device.type == "cpu"
                       else torch.contiguous_format)
        self.model = MultiNet(self.k, cfg.dropout, bn_momentum, bn_eps)
        self.model.load_singles(singles)
        self.dtype = dtype   # float64 only for the equivalence test (batches are made in float32, as TensorBatches)
        self.model.to(self.device, dtype=dtype, memory_format=self.layout)
        self.generators = [torch.Generator(device=self.device).manual_seed(s) for s in seeds]
        self.train_images = train.images.to(self.device).unsqueeze(1)   # uint8 [N, 1, 28, 28]
        self.train_labels = train.labels.to(self.device)
        self.test_images = test.images.to(self.device).unsqueeze(1)
        self.test_labels = test.labels.to(self.device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
        self.history: list[list[dict]] = [[] for _ in seeds]

    def single_state_dict(self, k: int) -> dict:
        """Model k's (seed `seeds[k]`) weights as a plain `Net` state dict."""
        return self.model.single_state_dict(k)

    def __len__(self) -> int:  # batches per epoch
        return math.ceil(len(self.train_labels) / self.cfg.batch_size)

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        return x.sub_(MNIST_MEAN).div_(MNIST_STD)

    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of (x [B, K, 28, 28], y [B, K]): model k's batch is what TensorBatches draws for seed k."""
        n, bs, k = len(self.train_labels), self.cfg.batch_size, self.k
        orders = torch.stack([torch.randperm(n, device=self.device, generator=g) for g in self.generators])
        max_rad = math.radians(self.cfg.rotation)
        for start in range(0, n, bs):
            idx = orders[:, start:start + bs]                         # [K, b]
            b = idx.shape[1]
            x = self.train_images[idx.reshape(-1)].float().div_(255.0)   # [K*b, 1, 28, 28]
            if self.cfg.rotation > 0:  # batches.rotate, with each model's angles from its own generator
                angles = torch.cat([torch.rand(b, device=self.device, generator=g) for g in self.generators])
                angles = (angles * 2 - 1) * max_rad
                cos, sin = angles.cos(), angles.sin()
                zero = torch.zeros_like(cos)
                theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
                grid = F.affine_grid(theta, list(x.shape), align_corners=False)
                x = F.grid_sample(x, grid, mode=self.cfg.rotation_interpolation, padding_mode="zeros",
                                  align_corners=False)
            x = self._normalize(x).to(self.dtype).reshape(k, b, 28, 28).transpose(0, 1)
            yield x.contiguous(memory_format=self.layout), self.train_labels[idx].t()

    def step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One SGD step of all K models; returns (per-model mean losses [K], correct counts [K], output)."""
        out = self.model(x)                                           # [B, K, 10]
        losses = -out.gather(2, y.unsqueeze(2)).squeeze(2).mean(0)     # [K], = F.nll_loss per model
        self.optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        self.optimizer.step()
        return losses.detach(), (out.detach().argmax(2) == y).sum(0), out

    @torch.no_grad()
    def evaluate(self) -> tuple[list[float], list[float]]:
        """Test loss and accuracy (%) per model, in eval mode (BatchNorm running statistics)."""
        was = self.model.training
        self.model.eval()
        loss_sum = torch.zeros(self.k, device=self.device, dtype=torch.float64)  # float64: exact sums
        correct = torch.zeros(self.k, device=self.device, dtype=torch.long)
        n, bs = len(self.test_labels), self.cfg.eval_batch_size
        for start in range(0, n, bs):
            xs = self._normalize(self.test_images[start:start + bs].float().div_(255.0)).to(self.dtype)
            x = xs.expand(-1, self.k, -1, -1).contiguous(memory_format=self.layout)
            y = self.test_labels[start:start + bs].unsqueeze(1).expand(-1, self.k)
            out = self.model(x)
            loss_sum += -out.gather(2, y.unsqueeze(2)).squeeze(2).sum(0).double()
            correct += (out.argmax(2) == y).sum(0)
        self.model.train(was)
        return (loss_sum / n).tolist(), (100.0 * correct.double() / n).tolist()

    def run(self) -> Iterator[list[dict]]:
        for epoch in range(1, self.cfg.epochs + 1):
            t0 = time.perf_counter()
            lr = self.optimizer.param_groups[0]["lr"]
            self.model.train()
            loss_sum = torch.zeros(self.k, device=self.device, dtype=self.dtype)
            correct = torch.zeros(self.k, device=self.device, dtype=torch.long)
            seen = 0
            for x, y in self.batches():
                losses, c, _ = self.step(x, y)
                loss_sum += losses * y.shape[0]
                correct += c
                seen += y.shape[0]
            self.scheduler.step()
            test_loss, test_acc = self.evaluate()
            seconds = time.perf_counter() - t0
            ls, cs = loss_sum.tolist(), correct.tolist()
            records = [{"epoch": epoch, "epochs": self.cfg.epochs, "lr": lr, "train_loss": ls[i] / seen,
                        "train_accuracy": 100.0 * cs[i] / seen, "test_loss": test_loss[i],
                        "test_accuracy": test_acc[i], "seconds": seconds} for i in range(self.k)]
            for i, r in enumerate(records):
                self.history[i].append(r)
            yield records
