"""reidcli.losses: every loss a small nn.Module citing its paper; one `LOSSES` registry.

Registered names: 'ce' (label-smoothed cross-entropy), 'triplet' (batch-hard), 'center',
'soft_ce' and 'soft_triplet' (Mutual Mean-Teaching), 'heatmap_mse' (RBNet).
"""

from reidcli.losses.registry import LOSSES
from reidcli.losses.distance import euclidean_dist
from reidcli.losses.cross_entropy import CrossEntropyLabelSmooth
from reidcli.losses.triplet import TripletLoss, hard_example_mining
from reidcli.losses.center import CenterLoss
from reidcli.losses.soft import SoftEntropy, SoftTripletLoss
from reidcli.losses.heatmap import HeatmapMSELoss, RBNetLoss

__all__ = [
    "LOSSES",
    "CenterLoss",
    "CrossEntropyLabelSmooth",
    "HeatmapMSELoss",
    "RBNetLoss",
    "SoftEntropy",
    "SoftTripletLoss",
    "TripletLoss",
    "euclidean_dist",
    "hard_example_mining",
]
