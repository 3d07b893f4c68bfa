"""Pretrained weights (imagenet cache / offline error / PATH), input-size checks, classifier reset."""

from __future__ import annotations

import logging
import urllib.error
from pathlib import Path

import pytest
import torch
from torchvision.models import resnet18

from reidcli.models import ModelConfig, ReidNet, build_model, check_input_size, min_input_divisor
from reidcli.models.pretrained import hub_cache_file
from reidcli.utils.errors import ConfigError, FormatError, InputError

R18_URL = "https://download.pytorch.org/models/resnet18-f37072fd.pth"


@pytest.fixture
def hub(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    return tmp_path / "hub"


def test_imagenet_offline_error(hub, monkeypatch):
    monkeypatch.setenv("REIDCLI_OFFLINE", "1")
    with pytest.raises(ConfigError, match="ImageNet weights for resnet50 are not available offline") as e:
        build_model(ModelConfig(arch="resnet50", pretrained="imagenet"))
    assert "--pretrained none" in str(e.value) and "\n" not in str(e.value)


def test_imagenet_download_failure_error(hub, monkeypatch):
    monkeypatch.delenv("REIDCLI_OFFLINE", raising=False)

    def fail(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fail)
    with pytest.raises(ConfigError, match="download failed: URLError"):
        build_model(ModelConfig(arch="tiny", pretrained="imagenet"))


def test_imagenet_from_cache(hub):
    ref = resnet18()
    path = hub_cache_file(R18_URL)
    path.parent.mkdir(parents=True)
    torch.save(ref.state_dict(), path)  # fc.* is ignored
    net = build_model(ModelConfig(arch="tiny", pretrained="imagenet"))
    torch.testing.assert_close(net.backbone.layer4[1].conv2.weight, ref.layer4[1].conv2.weight)
    # a rebuild from a checkpoint does not need the weights
    build_model(ModelConfig(arch="tiny", pretrained="/nonexistent"), load_pretrained=False)


def test_pretrained_path_wrapped_checkpoint(tmp_path, caplog):
    src = build_model(ModelConfig(arch="tiny", num_classes=4))
    state = {("module." + k): v for k, v in src.state_dict().items() if "layer4.1" not in k}
    path = tmp_path / "w.pt"
    torch.save({"model": state, "epoch": 3}, path)
    with caplog.at_level(logging.WARNING):
        net = build_model(ModelConfig(arch="tiny", pretrained=str(path)))
    torch.testing.assert_close(net.backbone.conv1.weight, src.backbone.conv1.weight)
    assert not torch.equal(net.backbone.layer4[1].conv1.weight, src.backbone.layer4[1].conv1.weight)
    assert "left at their initial values" in caplog.text and "layer4.1" in caplog.text


def test_pretrained_path_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        build_model(ModelConfig(arch="tiny", pretrained=str(tmp_path / "missing.pt")))
    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    with pytest.raises(FormatError, match="is not a PyTorch state dict"):
        build_model(ModelConfig(arch="tiny", pretrained=str(txt)))
    lst = tmp_path / "list.pt"
    torch.save([1, 2, 3], lst)
    with pytest.raises(FormatError, match="holds no tensors"):
        build_model(ModelConfig(arch="tiny", pretrained=str(lst)))
    other = tmp_path / "other.pt"
    torch.save({"foo.weight": torch.zeros(3)}, other)
    with pytest.raises(ConfigError, match="shares no parameter"):
        build_model(ModelConfig(arch="tiny", pretrained=str(other)))


def test_input_size_checks():
    cfg = ModelConfig(arch="tiny", last_stride=2)
    assert min_input_divisor(cfg) == 32 and min_input_divisor(ModelConfig(last_stride=1)) == 16
    check_input_size(cfg, 256, 128)
    with pytest.raises(ConfigError, match="--height 100 must be a multiple of 32.*use 96 or 128"):
        check_input_size(cfg, 100, 64)
    with pytest.raises(ConfigError, match="--width 40 must be a multiple of 16"):
        check_input_size(ModelConfig(last_stride=1), 64, 40)
    with pytest.raises(ConfigError, match="3 stripes"):
        check_input_size(ModelConfig(lstm_branch=True, last_stride=2), 64, 32)


@pytest.mark.parametrize(
    "field,value,flag",
    [("last_stride", 3, "^last_stride must be one of 1, 2; got 3"),
     ("pooling", "max", "^pooling must be one of avg, gem, avgmax"),
     ("neck", "bn", "^neck must be one of bnneck, none"),
     ("dropout", 1.0, r"^dropout must be a float in \[0, 1\); got 1.0"),
     ("embed_dim", -1, "^embed_dim must be an int >= 0; got -1")],
)
def test_config_validation(field, value, flag):
    with pytest.raises(ConfigError, match=flag):
        build_model(ModelConfig(arch="tiny", **{field: value}))


def test_config_dict_roundtrip_and_unknown_key():
    cfg = ModelConfig(arch="tiny", attention=True, embed_dim=64)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown keys \\['wings'\\]"):
        ModelConfig.from_dict({**cfg.to_dict(), "wings": 2})


def test_reset_classifier_from_centres():
    net: ReidNet = build_model(ModelConfig(arch="tiny", num_classes=3, lstm_branch=True))
    centres = torch.randn(7, net.feat_dim) * 5
    net.reset_classifier(7, centres)
    assert net.cfg.num_classes == 7
    torch.testing.assert_close(net.classifier.weight.norm(dim=1), torch.ones(7))
    torch.testing.assert_close(net.classifier.weight, centres / centres.norm(dim=1, keepdim=True))
    out = net(torch.randn(2, 3, 64, 32))
    assert out["logits"].shape == (2, 7) and out["local_logits"].shape == (2, 7)
    with pytest.raises(ConfigError, match="needs \\(4, 512\\)"):
        net.reset_classifier(4, torch.randn(4, 16))
    assert net.classifier.out_features == 7
    net.reset_classifier(0)
    assert "logits" not in net(torch.randn(2, 3, 64, 32))


def test_param_groups_cover_trainable_params():
    net = build_model(ModelConfig(arch="tiny", num_classes=3, pooling="gem"))
    groups = net.param_groups(3.5e-4, weight_decay=5e-4)
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in net.parameters() if p.requires_grad)
    assert groups[1]["weight_decay"] == 0.0 and any(p is net.pool.p for p in groups[1]["params"])
    torch.optim.Adam(groups)


def test_structure_of_variants():
    from reidcli.models.se_ibn import IBN, SEModule

    se = build_model(ModelConfig(arch="se_resnet50"))
    assert sum(isinstance(m, SEModule) for m in se.modules()) == 3 + 4 + 6 + 3
    ibn = build_model(ModelConfig(arch="resnet50_ibn_a"))
    with_ibn = {n.split(".")[1] for n, m in ibn.named_modules() if isinstance(m, IBN)}
    assert with_ibn == {"layer1", "layer2", "layer3"}
    ml = build_model(ModelConfig(arch="tiny", multilevel=True))  # --embed-dim 0 keeps the fused size
    assert ml.reduce is None and ml.feat_dim == 64 + 256 + 512
    ml = build_model(ModelConfig(arch="tiny", multilevel=True, embed_dim=100))
    assert (ml.reduce.in_features, ml.reduce.out_features, ml.feat_dim) == (64 + 256 + 512, 100, 100)
    att = build_model(ModelConfig(arch="tiny", attention=True))
    assert [a.channel.mlp[0].in_channels for a in att.attention] == [128, 256, 512]


@pytest.mark.parametrize("last_stride,size", [(1, (4, 2)), (2, (2, 1))])
def test_last_stride(last_stride, size):
    net = build_model(ModelConfig(arch="tiny", last_stride=last_stride))
    assert tuple(net.feature_maps(torch.randn(1, 3, 64, 32))[-1].shape[2:]) == size


def _served(tmp_path, obj, name: str) -> str:
    """A file:// URL serving ``obj`` saved under ``name`` (torch.hub downloads it like http)."""
    src = tmp_path / "served" / name
    src.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, src)
    return src.as_uri()


def _sha_prefix(url: str) -> str:
    import hashlib
    from urllib.parse import urlparse

    return hashlib.sha256(Path(urlparse(url).path).read_bytes()).hexdigest()[:8]


def test_download_is_hash_checked_and_weights_only(hub, tmp_path, monkeypatch):
    from reidcli.models.pretrained import imagenet_state

    monkeypatch.delenv("REIDCLI_OFFLINE", raising=False)
    state = {"w": torch.arange(4.0)}
    url = _served(tmp_path, state, "tiny-00000000.pth")  # a name whose hash prefix is wrong
    with pytest.raises(ConfigError, match="download failed: RuntimeError: invalid hash value"):
        imagenet_state("tiny", url)
    assert not hub_cache_file(url).exists()  # nothing unverified is cached
    good = url.replace("00000000", _sha_prefix(url))
    Path(good[len("file://"):]).write_bytes(Path(url[len("file://"):]).read_bytes())
    torch.testing.assert_close(imagenet_state("tiny", good)["w"], state["w"])


def test_download_refuses_pickled_objects(hub, tmp_path, monkeypatch):
    from reidcli.models.pretrained import imagenet_state

    monkeypatch.delenv("REIDCLI_OFFLINE", raising=False)
    url = _served(tmp_path, {"w": torch.ones(1), "extra": Path("x")}, "evil-00000000.pth")  # an arbitrary class
    good = url.replace("00000000", _sha_prefix(url))
    Path(good[len("file://"):]).write_bytes(Path(url[len("file://"):]).read_bytes())
    with pytest.raises(ConfigError, match="download failed: UnpicklingError"):
        imagenet_state("evil", good)


def test_url_without_hash_is_not_downloaded(hub, tmp_path, monkeypatch):
    from reidcli.models.pretrained import imagenet_state

    monkeypatch.delenv("REIDCLI_OFFLINE", raising=False)
    url = _served(tmp_path, {"w": torch.ones(1)}, "plain.pth")
    with pytest.raises(ConfigError, match="carry no hash in their name"):
        imagenet_state("tiny", url)


def test_multilevel_feature_is_the_three_pooled_maps_concatenated():
    """Zhang et al. 2020's fusion: GAP after layer1, layer3 and layer4, concatenated, kept as is."""
    net = build_model(ModelConfig(arch="tiny", multilevel=True, neck="none")).eval()
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        maps = net.feature_maps(x)
        want = torch.cat([maps[1].mean((2, 3)), maps[3].mean((2, 3)), maps[4].mean((2, 3))], 1)
        torch.testing.assert_close(net(x), want)


def _old_multilevel_checkpoint(path, version: int):
    """A checkpoint as reidcli wrote it up to version 2: multilevel, embed_dim 0 and an FC
    from the fused feature to layer4's 512 channels (the network of that time, rebuilt)."""
    from reidcli.io.ckpt import make_checkpoint, save_checkpoint

    torch.manual_seed(0)
    net = build_model(ModelConfig(arch="tiny", multilevel=True, embed_dim=512))
    cfg = ModelConfig(arch="tiny", multilevel=True, embed_dim=0).to_dict()
    ck = make_checkpoint(model_config=cfg, model_state=net.state_dict(), input_size=(64, 32),
                         method="supervised", epoch=1, feat_dim=512)
    ck["version"] = version
    save_checkpoint(path, ck)
    return net.eval()


@pytest.mark.parametrize("version", [1, 2])
def test_old_multilevel_checkpoints_keep_their_fc(tmp_path, version):
    from reidcli.io.ckpt import load_checkpoint
    from reidcli.models import load_network

    old = _old_multilevel_checkpoint(tmp_path / "old.pt", version)
    assert load_checkpoint(tmp_path / "old.pt")["model_config"]["embed_dim"] == 512
    model, _ = load_network(tmp_path / "old.pt")
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), old(x))
    assert model.feat_dim == 512


def test_new_multilevel_checkpoint_keeps_the_fused_size(tmp_path):
    from reidcli.io.ckpt import CKPT_VERSION, load_checkpoint, make_checkpoint, save_checkpoint
    from reidcli.models import load_network

    net = build_model(ModelConfig(arch="tiny", multilevel=True))
    ck = make_checkpoint(model_config=net.cfg.to_dict(), model_state=net.state_dict(), input_size=(64, 32),
                         method="supervised", epoch=1, feat_dim=net.feat_dim)
    save_checkpoint(tmp_path / "new.pt", ck)
    assert load_checkpoint(tmp_path / "new.pt")["version"] == CKPT_VERSION == 3
    model, _ = load_network(tmp_path / "new.pt")
    assert model.reduce is None and model(torch.randn(1, 3, 64, 32)).shape == (1, 64 + 256 + 512)
