"""The network described once (mnist_core/arch.py): the model built from it keeps the shipped checkpoint's
state_dict, its computed geometry is what the model computes, the folded layers and the view's stages
are the ones the page has always used, a table the other modules could not serve fails at import, the
weights payload and the network view's prop carry the stages, and the page's scripts hold no layer table."""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import torch

from mnist_core import arch
from mnist_core.arch import FOLDED, GEOMETRY, STAGES, VIEWS, view_table
from mnist_core.checkpoint import load_checkpoint, model_from_checkpoint
from mnist_core.fold import payload
from mnist_core.model import Net
from mnist_core.units import CHANNELS, FOLD_LAYER, MAP_STAGES
from mnist_core.units import STAGES as UNIT_STAGES

WEB = Path(__file__).resolve().parents[1] / "mnist_web" / "web"


def test_the_model_keeps_the_shipped_checkpoints_state_dict(shipped_checkpoint):
    """Same keys, order and shapes as the checkpoint saved before the model was built from arch.STAGES
    (read with weights_only=True, as the app reads it), so it loads strictly."""
    saved = torch.load(shipped_checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    built = Net().state_dict()
    assert [(k, tuple(v.shape)) for k, v in built.items()] == [(k, tuple(v.shape)) for k, v in saved.items()]
    assert [name for name, _ in Net().stages()] == [s.name for s in STAGES]
    model = model_from_checkpoint(load_checkpoint(shipped_checkpoint))    # strict load_state_dict
    assert isinstance(model.gap, torch.nn.AvgPool2d) and model.gap.kernel_size == 4
    assert isinstance(model.head, torch.nn.Conv2d) and isinstance(model.conv1, torch.nn.Sequential)


def test_computed_geometry_is_what_the_model_computes():
    x = torch.zeros(2, arch.INPUT_CHANNELS, arch.INPUT_SIDE, arch.INPUT_SIDE)
    for (name, module), stage, g in zip(Net().eval().stages(), STAGES, GEOMETRY, strict=True):
        assert x.shape[1] == g.cin and x.shape[2] == g.side_in, name
        x = module(x)
        assert tuple(x.shape[1:]) == (stage.channels, g.side, g.side), name


def test_receptive_fields_are_computed_from_kernels_and_pools():
    fields = {v.name: v.receptive_field for v in VIEWS}
    assert [fields[s][2] for s in MAP_STAGES] == [3, 5, 6, 10, 14, 18, 22]     # the model's old comments
    assert [fields[s][1] for s in MAP_STAGES] == [1, 1, 2, 2, 2, 2, 2]
    assert fields["gap"] == (0, 8, 28) and fields["out"] == (0, 8, 28)            # the whole digit


def test_folded_layers_and_view_stages_are_the_ones_the_page_has_always_used():
    assert [tuple(f)[:6] for f in FOLDED] == [
        ("conv1", 1, 8, 3, True, ""), ("conv2", 8, 16, 3, True, ""), ("trans", 16, 8, 1, False, "max2"),
        ("conv3", 8, 16, 3, True, ""), ("conv4", 16, 8, 3, True, ""), ("conv5", 8, 16, 3, True, ""),
        ("conv6", 16, 16, 3, True, "avg4"), ("head", 16, 10, 1, False, "")]
    assert [f.folds for f in FOLDED] == [None, None, "conv2", None, "conv3", "conv4", "conv5", "conv6"]
    assert UNIT_STAGES == [("conv1", 8, 26), ("conv2", 16, 24), ("transition", 8, 12), ("conv3", 16, 10),
                           ("conv4", 8, 8), ("conv5", 16, 6), ("conv6", 16, 4), ("gap", 16, 1), ("out", 10, 1)]
    assert FOLD_LAYER == {"conv1": 0, "conv2": 1, "transition": 2, "conv3": 3, "conv4": 4, "conv5": 5, "conv6": 6}
    assert sum(CHANNELS[s] for s in MAP_STAGES) == 88
    views = {v.name: v for v in VIEWS}
    assert [n for n, v in views.items() if v.before_pool] == ["conv6"]         # the 4x4 maps, not the pooled
    assert {n: v.folds for n, v in views.items() if v.folds} == {
        "transition": "conv2", "conv4": "conv3", "conv5": "conv4", "conv6": "conv5", "out": "conv6"}
    assert [v.kind for v in VIEWS] == ["map"] * 7 + ["pool", "logits"]


@pytest.mark.parametrize("change, why", [
    ({2: {"batchnorm": True}}, "cannot fold through"),           # a BatchNorm before a max-pool
    ({7: {"channels": 8}}, "a mean over the map"),               # the average pool changes the channels
    ({8: {"kernel": 3}}, "1x1 in size"),                         # the head would have no map left
    ({0: {"kernel": 2}}, "odd map"),                             # 27 -> 26 ... trans max-pools a 25x25 map
    ({6: {"batchnorm": False, "pool": "max2"}}, "follows a convolution without a pool"),
])
def test_a_table_the_other_modules_cannot_serve_is_refused(change, why):
    stages = [dataclasses.replace(s, **change.get(i, {})) for i, s in enumerate(STAGES)]
    with pytest.raises(ValueError, match=why):
        arch._check(stages, arch._geometry(stages))
    arch._check(STAGES, GEOMETRY)                                 # the real one passes


def test_the_weights_payload_and_the_network_views_prop_carry_the_stages(shipped_checkpoint):
    from mnist_web.components import network_view

    ckpt = load_checkpoint(shipped_checkpoint)
    data = json.loads(json.dumps(payload(model_from_checkpoint(ckpt), ckpt["normalization"])))
    assert data["stages"] == view_table() == network_view().get_config()["props"]["stages"]
    assert [(s["name"], s["channels"], s["side"]) for s in data["stages"]] == UNIT_STAGES
    assert [s["receptive_field"]["size"] for s in data["stages"] if s["kind"] == "map"] == [3, 5, 6, 10, 14, 18, 22]
    assert [layer["folds"] for layer in data["layers"]] == [f.folds for f in FOLDED]
    for stage in data["stages"]:                  # each stage names the payload layer that computes it
        layer = data["layers"][stage["layer"]]
        assert layer["cout"] == stage["channels"], stage["name"]


NAMES = sorted({s.name for s in STAGES} | {v.name for v in VIEWS}, key=len, reverse=True)
# a quoted stage name ('conv3', "transition", `out`); a row of a table: an array of a name and numbers or
# flags, or of three or more numbers; a LAYERS / STAGES / FOLDED table assigned a literal
TABLE_PATTERNS = [
    re.compile(r"""(['"`])(""" + "|".join(NAMES) + r""")\1"""),
    re.compile(r"""\[\s*['"][^'"\n]*['"]\s*(,\s*(-?\d+(\.\d+)?|true|false|['"][^'"\n]*['"])\s*){2,}\]"""),
    re.compile(r"\[\s*-?\d+\s*(,\s*-?\d+\s*){2,}\]"),
    re.compile(r"\b(LAYERS|STAGES|FOLDED|RECEPTIVE\w*)\s*=\s*[\[{]"),
]


def layer_tables(source: str) -> list[str]:
    return [m.group(0) for p in TABLE_PATTERNS for m in p.finditer(source)]


def test_the_tables_this_test_looks_for_are_found():
    """The patterns catch the tables the two scripts used to hold (so their absence below means something)."""
    old_mnistnet = "const LAYERS = [['conv1', 1, 8, 3, true, ''], ['conv2', 8, 16, 3, true, '']];"
    old_network = ("const STAGES = [['conv1', 8, 26, 3, 0, 3], ['transition', 8, 12, 5, 2, 6]];\n"
                   "const FOLDED = { transition: 'conv2', conv4: 'conv3' };\n"
                   "out.gap = r.stages[6].data; for (const name of ['gap', 'out']) {}\n"
                   "const RF = [3, 5, 6, 10, 14, 18, 22];")
    assert len(layer_tables(old_mnistnet)) >= 3
    found = layer_tables(old_network)
    assert {"'transition'", "'conv2'", "'gap'", "'out'", "[3, 5, 6, 10, 14, 18, 22]"} <= set(found), found


@pytest.mark.parametrize("name", ["mnistnet.js", "network.js"])
def test_the_pages_network_scripts_hold_no_layer_table(name):
    """Their layers come with the weights (GET /mnist/weights), the view's stages from the server's
    description (mnist_core/arch.py): no stage names, no rows of kernels, channels or receptive fields."""
    assert layer_tables((WEB / name).read_text(encoding="utf-8")) == []
