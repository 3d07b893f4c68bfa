"""From a checkpoint back to a network: the one place that does it.

`network_from_checkpoint` rebuilds the network a loaded checkpoint dict describes and puts
one of its state dicts in (``model`` by default, or a named extra net such as MMT's
``mean2``), with domain-specific BN collapsed to the deployed domain. `load_network` reads
the file too and returns the network in eval mode. ``reid features``, ``reid finetune``
and the training methods all go through these; `reidcli.io.ckpt` only reads and writes the
dicts.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from torch import nn

from reidcli.io.ckpt import load_checkpoint, pick_net_state
from reidcli.utils.errors import FormatError, InputError

# ``--net mean``: networks whose embeddings are averaged. MMT (Ge et al., ICLR 2020; public
# code, mmt_train_*.py) clusters the mean of both mean nets' features, not mean net 1's.
NET_GROUPS = {"mmt": {"mean": ("model", "mean2")}}


class MeanOfNets(nn.Module):
    """Embeds with every network and averages their L2-normalised features (eval only)."""

    def __init__(self, nets: list[nn.Module]):
        super().__init__()
        self.nets = nn.ModuleList(nets)
        self.feat_dim = getattr(nets[0], "feat_dim", 0)
        self.cfg = getattr(nets[0], "cfg", None)

    def forward(self, x):
        import torch.nn.functional as F

        feats = [F.normalize(net(x).float(), dim=1) for net in self.nets]
        return sum(feats) / len(feats)


def network_from_checkpoint(ck: dict, state: Optional[dict] = None, *, net: Optional[str] = None,
                            bn_domain: Optional[str] = None, source: Any = "checkpoint") -> nn.Module:
    """The network described by checkpoint ``ck``, with its weights.

    Args:
        ck: a loaded checkpoint dict (`reidcli.io.ckpt.load_checkpoint`).
        state: the state dict to load; default: the one ``net`` names.
        net: which network of the checkpoint (default ``model``, the deployed one); see
            `reidcli.io.ckpt.pick_net_state`.
        bn_domain: with domain-specific BN, whose statistics to keep (default: the
            checkpoint's ``bn.deploy``, else its last domain).
        source: the file the checkpoint came from, for messages.

    The network's config records ``pretrained='none'``: its weights come from ``ck``.
    """
    from reidcli.models.config import ModelConfig
    from reidcli.models.net import build_model

    group = NET_GROUPS.get(ck.get("method"), {}).get(net) if state is None else None
    if group is not None:
        return MeanOfNets([network_from_checkpoint(ck, net=n, bn_domain=bn_domain, source=source) for n in group])
    if net == "mean":
        have = ", ".join(sorted(k for m in NET_GROUPS.values() for k in m))
        raise InputError(f"{source} was trained with method '{ck.get('method')}', which has one network; "
                         f"--net mean averages the mean nets of an MMT checkpoint (groups: {have})")
    cfg = ModelConfig.from_dict(ck["model_config"])
    cfg.pretrained = "none"
    model = build_model(cfg, load_pretrained=False)
    if state is None:
        state = pick_net_state(ck, net, source)
    domains = (ck.get("bn") or {}).get("domains") or []
    if not domains:
        if bn_domain is not None:
            from reidcli.utils.params import NotApplicable

            raise NotApplicable("bn_domain", f"does not apply to {source}: it has no domain-specific BN (trained "
                                          "without --domain-bn); drop --bn-domain")
        load_state(model, state, source)
        return model
    from reidcli.models.bn import collapse_domain_bn, convert_domain_bn

    pick = bn_domain or ck["bn"].get("deploy") or domains[-1]
    if pick not in domains:
        raise InputError(f"{source} has BN domains {domains}; --bn-domain {pick!r} is not one of them")
    convert_domain_bn(model, len(domains))
    load_state(model, state, source)
    collapse_domain_bn(model, domains.index(pick))
    return model


def check_network(ck: dict, source: Any = "checkpoint") -> Optional[str]:
    """Rebuild the deployed network of checkpoint ``ck`` and load its weights strictly, so a
    crafted or damaged file (tensors missing, extra or of another shape, a ``feat_dim`` its
    weights do not give) is a `FormatError` naming ``source``. Returns None when checked, or
    why it could not be (an architecture this reidcli does not know: nothing to rebuild)."""
    from reidcli.models import MODELS
    from reidcli.utils.errors import FormatError, ReidError

    arch = (ck.get("model_config") or {}).get("arch")
    if not isinstance(arch, str) or arch not in MODELS:
        return f"arch {arch!r} is not one this reidcli builds, so its weights were not checked"
    try:
        model = network_from_checkpoint(ck, source=source)
    except FormatError:
        raise
    except ReidError as exc:
        raise FormatError(f"{source}: its model_config does not build a network ({str(exc).splitlines()[0]}); "
                          "the checkpoint is inconsistent, re-create it") from exc
    except (TypeError, ValueError, KeyError) as exc:
        raise FormatError(f"{source}: its model_config does not build a network ({type(exc).__name__}: {exc}); "
                          "the checkpoint is inconsistent, re-create it") from exc
    have, said = getattr(model, "feat_dim", None), ck.get("feat_dim")
    if have is not None and said is not None and int(said) != int(have):
        raise FormatError(f"{source}: feat_dim is {said} but its weights embed {have}-d; the checkpoint is "
                          "inconsistent, re-create it")
    return None


def load_network(path: str | os.PathLike, device: Any = "cpu", *, bn_domain: Optional[str] = None,
                 net: Optional[str] = None) -> tuple[nn.Module, dict]:
    """Read checkpoint ``path`` and rebuild its network (see `network_from_checkpoint`) on
    ``device`` in eval mode.

    Returns:
        ``(model, ckpt)`` with ``ckpt`` the loaded dict (weights included).
    """
    ck = load_checkpoint(path)
    model = network_from_checkpoint(ck, net=net, bn_domain=bn_domain, source=path)
    return model.to(device).eval(), ck


def load_state(model: nn.Module, state: dict, source: Any) -> None:
    """``model.load_state_dict(state)`` (strict), a mismatch being a one-line `FormatError`."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise FormatError(f"{source}: weights do not fit the network its config describes ({first}); "
                          "the checkpoint is inconsistent, re-create it") from exc
