"""RBNet under methods whose losses read only backbone 1 (pseudo, kd, joint, camstyle, mar,
agents): the reverse and masked passes are skipped in training
(`reidcli.models.rbnet.skip_unused_passes`), with the same losses, weights, backbone-1
statistics and deployed feature as the full forward; where the passes matter (MMT's mean
nets, supervised heat-maps, a masked inference feature, shared BN on the 'simple' path)
they still run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

H, W = 32, 16
SMALL = "resnet18_quarter"  # the smallest backbone: RBNet's passes are tested, not its backbone
SKIPPED_MODULES = ("reverse.", "bn2.", "backbone2.", "bnneck2.", "mask_channel.", "inject.", "classifier2.")


def _run(root, tmp_path, method: str, rb: dict, monkeypatch, *, skip: bool) -> dict:
    """Two engine steps of ``method`` from an RBNet checkpoint; the log's losses, the
    trained net's state before and after, and how many reverse passes ran."""
    import reidcli.models.rbnet as R
    from reidcli.data.layouts import load_dataset
    from reidcli.data.loader import ImageDataset
    from reidcli.data.records import relabel
    from reidcli.data.transforms import AugmentConfig, build_train_transform
    from reidcli.io.ckpt import make_checkpoint
    from reidcli.models import ModelConfig, build_model
    from reidcli.train.config import TrainConfig
    from reidcli.train.dist import DistInfo
    from reidcli.train.engine import Engine
    from reidcli.train.methods import get_method
    from reidcli.train.methods.base import EngineContext
    from reidcli.train.methods.uda import TwoViewDataset

    if not skip:
        monkeypatch.setattr(R, "skip_unused_passes", lambda net: False)
    passes = []
    real = R.RBNet.reverse_pass
    monkeypatch.setattr(R.RBNet, "reverse_pass", lambda self, *a, **k: passes.append(1) or real(self, *a, **k))
    torch.manual_seed(0)
    np.random.seed(0)
    cfg = ModelConfig(arch="rbnet", rbnet={"backbone": SMALL, **rb}, last_stride=2, num_classes=6)
    net = build_model(cfg)
    ck = make_checkpoint(model_config=cfg.to_dict(), model_state=net.state_dict(), input_size=(H, W),
                         method="supervised", epoch=1, feat_dim=net.feat_dim)
    recs = [r for r in load_dataset(root).split("train") if r.pid >= 0]
    y, _ = relabel([r.pid for r in recs])
    cls = TwoViewDataset if method == "mmt" else ImageDataset
    ds = cls(root, recs, build_train_transform(AugmentConfig(height=H, width=W)), labels=y, size=(H, W))
    train = TrainConfig(epochs=1, iters_per_epoch=2, p=3, k=2, workers=0, warmup_epochs=0, images_per_bn=0,
                        amp=False, seed=0, log_every=1).validate()
    k = int(y.max()) + 1
    ctx = EngineContext(cfg=train, device=torch.device("cpu"), dist=DistInfo(), num_classes=k,
                        data={"target": ds, "init": ck, "init2": None, "centers": torch.randn(k, ck["feat_dim"])},
                        facts={"model_config": cfg.to_dict(), "method": method})
    meth = get_method(method, {})
    out = tmp_path / f"{method}-{skip}.pt"
    engine = Engine(meth, train, out=out, ctx=ctx, meta={"input_size": [H, W], "pixel_mean": [0.5] * 3,
                                                         "pixel_std": [0.25] * 3})
    engine.fit()
    trained = meth.nets[meth.trained[0]]
    rows = [json.loads(x) for x in out.with_name(out.stem + ".log.jsonl").read_text().splitlines()]
    trained.eval()
    with torch.no_grad():
        feature = trained(torch.randn(4, 3, H, W, generator=torch.Generator().manual_seed(1)))
    return {"losses": [{k: v for k, v in r.items() if k not in ("img_s", "data_s", "compute_s", "decode_ms", "augment_ms")}
                       for r in rows if r["type"] == "step"],
            "state": {k: v.clone() for k, v in trained.state_dict().items()},
            "initial": net.state_dict(), "passes": len(passes), "feature": feature,
            "params": {n for n, _ in trained.named_parameters()}}


@pytest.mark.parametrize("method", ["pseudo", "kd"])
def test_skipped_passes_change_nothing_that_is_kept(method, synth_market, tmp_path, monkeypatch):
    full = _run(synth_market, tmp_path, method, {}, monkeypatch, skip=False)
    monkeypatch.undo()
    fast = _run(synth_market, tmp_path, method, {}, monkeypatch, skip=True)
    assert full["passes"] >= 2 and fast["passes"] == 0  # the reverse pass ran in every full step only
    assert fast["losses"] == full["losses"] and len(fast["losses"]) == 2
    torch.testing.assert_close(fast["feature"], full["feature"], rtol=0, atol=0)  # the deployed feature
    for key, v in full["state"].items():
        if key.startswith(SKIPPED_MODULES) and key not in fast["params"]:
            # a statistic of a skipped module: the checkpoint's, never moved by the target images
            assert torch.equal(fast["state"][key], fast["initial"][key]), key
        else:  # every parameter and every statistic of backbone 1 and its head
            assert torch.equal(fast["state"][key], v), key
    moved = [k for k in full["state"] if k.startswith("reverse.") and k.endswith("running_mean")
             and not torch.equal(full["state"][k], full["initial"][k])]
    assert moved, "the full forward moves the reverse statistics (so the test can tell the two apart)"


@pytest.mark.parametrize("method,rb", [
    ("pseudo", {"mask_path": "simple"}),          # the masked pass moves backbone 1's shared BN
    ("pseudo", {"feature": "both"}),              # the deployed feature uses the masked pass
    ("mmt", {}),                                  # mean nets embed the masked view (mean_output)
])
def test_the_passes_still_run_where_they_matter(method, rb, synth_market, tmp_path, monkeypatch):
    res = _run(synth_market, tmp_path, method, rb, monkeypatch, skip=True)
    assert res["passes"] >= 2


def test_which_methods_read_only_global_outputs():
    from reidcli.train.methods import TRAINING_METHODS

    names = {n for n in TRAINING_METHODS.names() if TRAINING_METHODS.get(n).global_outputs}
    assert names == {"pseudo", "kd", "joint", "camstyle", "mar", "agents"}
