"""`cameras_of`: a dataset split's records per camera, the domains camera-style transfer
learns (both `reidcli.stylize.fit` (colour statistics) and `reidcli.stylize.train` (StarGAN)
read them)."""

from __future__ import annotations

from collections import defaultdict

from reidcli.data.records import Dataset, Record
from reidcli.utils.errors import InputError


def cameras_of(ds: Dataset, split: str) -> dict[int, list[Record]]:
    """Records of ``split`` per camera, by camera id; fewer than two cameras is an `InputError`."""
    per_cam: dict[int, list[Record]] = defaultdict(list)
    for r in ds.split(split):
        per_cam[r.camid].append(r)
    if len(per_cam) < 2 and ds.format in ("folder", "unlabelled") and "cameras" not in ds.meta:
        raise InputError(f"{ds.root}: a {ds.format} layout gives its images no camera ids; camera-style "
                         "transfer learns cameras, so give a dataset whose names carry them (Market-1501, "
                         "DukeMTMC, MSMT17, SYSU-MM01, or a CSV list with a camid column)")
    if len(per_cam) < 2:
        raise InputError(f"{ds.root}: the {split} split has {len(per_cam)} camera(s); camera-style "
                         "transfer needs images of at least two cameras (camera ids come from the layout)")
    return dict(sorted(per_cam.items()))
