"""reidcli.losses: every loss a small nn.Module citing its paper; one `LOSSES` registry."""

from reidcli.losses.registry import LOSSES
from reidcli.losses.cross_entropy import CrossEntropyLabelSmooth
from reidcli.losses.triplet import TripletLoss, hard_example_mining
from reidcli.losses.distance import euclidean_dist

__all__ = [
    "LOSSES",
    "CrossEntropyLabelSmooth",
    "TripletLoss",
    "euclidean_dist",
    "hard_example_mining",
]
