"""reidcli.losses: every loss a small nn.Module citing its paper.

`CrossEntropyLabelSmooth`, `TripletLoss` (batch-hard), `CenterLoss`, `SoftEntropy` and
`SoftTripletLoss` (Mutual Mean-Teaching), `HeatmapMSELoss` and `RBNetLoss` (RBNet),
`DomainConnectedness` (the source-vs-target triplet of LSTM-UDA 2021). The
training methods build them from their options (`reidcli.train.methods.objective`); no
command chooses a loss by name, so there is no loss registry.
"""

from reidcli.losses.distance import euclidean_dist
from reidcli.losses.cross_entropy import CrossEntropyLabelSmooth
from reidcli.losses.triplet import TripletLoss, hard_example_mining
from reidcli.losses.center import CenterLoss
from reidcli.losses.soft import SoftEntropy, SoftTripletLoss
from reidcli.losses.heatmap import HeatmapMSELoss, RBNetLoss
from reidcli.losses.domain import DomainConnectedness

__all__ = [
    "CenterLoss",
    "CrossEntropyLabelSmooth",
    "DomainConnectedness",
    "HeatmapMSELoss",
    "RBNetLoss",
    "SoftEntropy",
    "SoftTripletLoss",
    "TripletLoss",
    "euclidean_dist",
    "hard_example_mining",
]
