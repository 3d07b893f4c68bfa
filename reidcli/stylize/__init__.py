"""Camera-style transfer (``reid stylize``): fit a style model on a dataset's cameras, then
write every image in other cameras' styles as a dataset in the same layout.

>>> fit_style("data/market", "style.pt", method="color")            # doctest: +SKIP
>>> apply_style("style.pt", "data/market", "styled/", cams="all")   # doctest: +SKIP
"""

from reidcli.stylize.apply import apply_style, parse_cams
from reidcli.stylize.fit import fit_style
from reidcli.stylize.model import StyleModel, load_style_model

__all__ = ["StyleModel", "apply_style", "fit_style", "load_style_model", "parse_cams"]
