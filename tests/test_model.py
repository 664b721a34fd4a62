import torch

from mnist_core.model import ARCHITECTURE, Net, build_model, count_parameters

# The design's table: output shape after each stage for a 28x28 input.
EXPECTED = [("conv1", (8, 26, 26)), ("conv2", (16, 24, 24)), ("trans", (8, 12, 12)), ("conv3", (16, 10, 10)),
            ("conv4", (8, 8, 8)), ("conv5", (16, 6, 6)), ("conv6", (16, 4, 4)), ("gap", (16, 1, 1)),
            ("head", (10, 1, 1))]


def test_parameter_count_is_7416():
    assert count_parameters(Net()) == 7416


def test_per_layer_parameter_counts():
    m = Net()
    counts = {name: sum(p.numel() for p in stage.parameters()) for name, stage in m.stages()}
    # conv weights (+ BN gamma/beta); the 1x1 transition is 16*8 = 128
    assert counts == {"conv1": 72, "conv2": 1152 + 32, "trans": 128, "conv3": 1152 + 32, "conv4": 1152 + 16,
                      "conv5": 1152 + 32, "conv6": 2304 + 32, "gap": 0, "head": 160}


def test_no_conv_has_a_bias():
    assert all(m.bias is None for m in Net().modules() if isinstance(m, torch.nn.Conv2d))


def test_intermediate_shapes():
    m = Net().eval()
    x = torch.zeros(3, 1, 28, 28)
    for (name, stage), (exp_name, exp_shape) in zip(m.stages(), EXPECTED, strict=True):
        x = stage(x)
        assert name == exp_name and tuple(x.shape) == (3, *exp_shape), name


def test_output_is_log_probabilities():
    out = Net().eval()(torch.randn(4, 1, 28, 28))
    assert out.shape == (4, 10)
    assert torch.allclose(out.exp().sum(1), torch.ones(4), atol=1e-5)


def test_build_model_refuses_other_architectures():
    import pytest
    assert isinstance(build_model({"architecture": ARCHITECTURE, "dropout": 0.1}), Net)
    with pytest.raises(ValueError):
        build_model({"architecture": "resnet50"})
