"""The CUDA fast path (gpu_fast.FastLoop) computes the same training steps as plain eager steps.

The loop's logic (staging, several steps per graph, the remainder and the smaller last batch, the
device-side sums, the captured evaluation) is checked on the CPU with graphs off, in every run; the
CUDA tests replay real CUDA graphs and are skipped where there is no CUDA GPU.
"""
import copy

import pytest
import torch
import torch.nn.functional as F

from mnist_core.batches import TensorBatches
from mnist_core.config import TrainConfig
from mnist_core.data import load_mnist
from mnist_core.evaluate import evaluate
from mnist_core.gpu_fast import FastLoop
from mnist_core.model import Net
from mnist_core.train import Trainer

NO_CUDA = "no CUDA GPU here: the CUDA-graph fast path runs only on CUDA (its logic is tested on the CPU above)"
cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)

B = 64


def _data(device, n_train=B * 11 + 20, n_test=130, seed=0):
    g = torch.Generator().manual_seed(seed)
    imgs = torch.randint(0, 256, (n_train, 28, 28), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (n_train,), generator=g)
    timgs = torch.randint(0, 256, (n_test, 28, 28), dtype=torch.uint8, generator=g)
    tlabels = torch.randint(0, 10, (n_test,), generator=g)
    return [t.to(device) for t in (imgs, labels, timgs, tlabels)]


def _loop_and_reference(device, steps_per_graph, use_graphs, compile=None):
    torch.manual_seed(0)
    model = Net(dropout=0.0).to(device)
    ref = copy.deepcopy(model)
    imgs, labels, timgs, tlabels = _data(device)
    loop = FastLoop(model, imgs, labels, timgs, tlabels, batch_size=B, lr=0.02, momentum=0.9, rotation=7.0,
                    interpolation="nearest", eval_batch_size=50,
                    generator=torch.Generator(device=device).manual_seed(1),
                    steps_per_graph=steps_per_graph, use_graphs=use_graphs, compile=compile)
    return loop, ref, (timgs, tlabels)


def _eager_epoch(model, opt, x, y):
    """The Trainer's eager step, batch by batch over the same epoch tensors."""
    loss_sum, correct = 0.0, 0
    for s in range(0, len(y), B):
        xb, yb = x[s:s + B], y[s:s + B]
        out = model(xb)
        loss = F.nll_loss(out, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.item() * len(yb)
        correct += int((out.argmax(1) == yb).sum())
    return loss_sum, correct


def _max_diff(a, b):
    return max((p - q).abs().max().item()
               for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_fast_loop_logic_matches_eager_steps_on_cpu():
    # 11 full batches + 20: with 3 steps per "graph" that is 3 + 3 + 3, then 1 + 1, then the last 20
    loop, ref, (timgs, tlabels) = _loop_and_reference(torch.device("cpu"), 3, use_graphs=False)
    opt = torch.optim.SGD(ref.parameters(), lr=0.02, momentum=0.9)
    calls = []
    for _ in range(2):
        x, y = loop.make_epoch()
        assert loop.train_epoch(None, lambda *a: calls.append(a), 2, epoch=(x, y))
        ls, cs = _eager_epoch(ref, opt, x, y)
        got_ls, got_cs = loop.sums()
        assert got_cs == cs and got_ls == pytest.approx(ls, rel=1e-6)
    assert _max_diff(loop.model, ref) == 0.0        # same kernels on the CPU: bit for bit
    assert [c[0] for c in calls[:5]] == [3, 6, 9, 10, 12]   # every >= 2 batches, at most once per replay, and the end
    assert calls[4][1] == len(y)                    # seen = every sample at the end
    got = loop.evaluate()
    want = evaluate(ref, TensorBatches(timgs, tlabels, 50, shuffle=False))
    assert got["loss"] == pytest.approx(want["loss"], rel=1e-6)
    assert got["confusion_matrix"] == want["confusion_matrix"] and got["accuracy"] == want["accuracy"]


def test_fast_loop_compile_knob_trains_through_the_compiled_forward_and_backward():
    # gpu_fast.COMPILE's wiring, on the CPU: "aot_eager" traces forward and backward as Inductor would
    # (Dynamo + AOTAutograd) but runs them with ATen's kernels, so no C++/Triton compiler is needed here.
    from torch._dynamo.testing import CompileCounterWithBackend
    torch._dynamo.reset()
    counter = CompileCounterWithBackend("aot_eager")
    loop, ref, (timgs, tlabels) = _loop_and_reference(torch.device("cpu"), 3, use_graphs=False,
                                                       compile={"backend": counter})
    opt = torch.optim.SGD(ref.parameters(), lr=0.02, momentum=0.9)
    x, y = loop.make_epoch()
    assert loop.train_epoch(None, epoch=(x, y))
    ls, cs = _eager_epoch(ref, opt, x, y)
    got_ls, got_cs = loop.sums()
    assert got_ls == pytest.approx(ls, rel=1e-4) and abs(got_cs - cs) <= 2
    assert _max_diff(loop.model, ref) < 1e-4
    trained = counter.frame_count
    assert trained >= 1                         # the steps ran the compiled model (the short last batch: again)
    got = loop.evaluate()       # eval mode and no_grad: Dynamo compiles that variant too
    want = evaluate(ref, TensorBatches(timgs, tlabels, 50, shuffle=False))
    assert got["loss"] == pytest.approx(want["loss"], rel=1e-4)
    assert counter.frame_count > trained
    torch._dynamo.reset()


def test_fast_loop_stops_between_replays():
    loop, _, _ = _loop_and_reference(torch.device("cpu"), 3, use_graphs=False)
    checks = []

    def stop():
        checks.append(1)
        return len(checks) > 1       # let the first replay (3 steps) run, then stop

    assert loop.train_epoch(stop) is False
    assert len(checks) == 2 and loop.sums()[0] > 0


def test_cpu_trainer_does_not_use_the_fast_path(synthetic_root):
    train, test = load_mnist(synthetic_root, download=False)
    t = Trainer(TrainConfig(device="cpu", epochs=1), train, test)
    assert t.fast is None and t.graphed is None


@pytest.fixture
def exact_cuda_math():
    """FP32 convolutions (no TF32) with deterministic cuDNN algorithms, restored afterwards.

    With TF32 (PyTorch's default for cuDNN convolutions) a 1-ulp difference in a weight (the fused
    SGD kernel rounds differently from the foreach one) can flip its rounding to TF32's 10-bit
    mantissa, a 1e-3 relative jump, so two correct paths part by ~0.1% in loss after a dozen steps
    (seen on an H100). Without TF32 they agree to float rounding."""
    b = torch.backends.cudnn
    saved = b.allow_tf32, b.deterministic, b.benchmark, torch.backends.cuda.matmul.allow_tf32
    b.allow_tf32, b.deterministic, b.benchmark, torch.backends.cuda.matmul.allow_tf32 = False, True, False, False
    yield
    b.allow_tf32, b.deterministic, b.benchmark, torch.backends.cuda.matmul.allow_tf32 = saved


@cuda_only
def test_cuda_graphs_match_eager_first_steps(exact_cuda_math):
    dev = torch.device("cuda")
    loop, ref, (timgs, tlabels) = _loop_and_reference(dev, 4, use_graphs=True)
    opt = torch.optim.SGD(ref.parameters(), lr=0.02, momentum=0.9)
    for _ in range(2):   # epoch 1: 2 eager warm-up steps, 2 graph replays of 4, 1 one-step replay, the last 20
        x, y = loop.make_epoch()
        assert loop.train_epoch(epoch=(x, y))
        ls, cs = _eager_epoch(ref, opt, x, y)
        got_ls, got_cs = loop.sums()
        assert got_ls == pytest.approx(ls, rel=1e-4)
        assert abs(got_cs - cs) <= 2            # an argmax tie may go either way after float differences
    assert loop.graph_error is None and set(loop.graphs) == {1, 4} and loop.replays > 0
    assert _max_diff(loop.model, ref) < 1e-4
    for p, q in zip(loop.model.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-3, atol=1e-5)
    first, second = loop.evaluate(), loop.evaluate()      # eager warm-up, then the captured graph
    want = evaluate(loop.model, TensorBatches(timgs, tlabels, 50, shuffle=False))
    assert loop.eval_graph is not None
    for got in (first, second):
        assert got["loss"] == pytest.approx(want["loss"], rel=1e-5)
        assert got["confusion_matrix"] == want["confusion_matrix"]


@cuda_only
def test_cuda_trainer_default_is_the_fast_path(synthetic_root):
    import threading
    train, test = load_mnist(synthetic_root, download=False)
    calls = []
    t = Trainer(TrainConfig(device="cuda", epochs=2), train, test, on_batch=lambda *a: calls.append(a))
    hist = [r.as_dict() for r in t.run()]
    assert t.fast is not None and t.fast.graph_error is None and t.fast.graphs
    assert len(hist) == 2 and hist[-1]["test_accuracy"] > 50 and hist[0]["lr"] == 0.02
    total = len(t.train_batches)
    assert calls and calls[-1][0] == total and all(0 < c[2] < 3 and 0 <= c[3] <= 100 for c in calls)
    stop = threading.Event()
    t2 = Trainer(TrainConfig(device="cuda", epochs=3), train, test, stop=stop,
                 on_batch=lambda d, *_: stop.set())
    assert list(t2.run()) == [] and t2.stopped
