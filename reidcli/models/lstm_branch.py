"""The local branch of LSTM-UDA 2021 (docs/papers.md section 5): three horizontal stripes of
the last feature map, read head to feet by a bidirectional LSTM (hidden 256), then an FC
embedding."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

N_STRIPES = 3


class LSTMBranch(nn.Module):
    """[N, C, H, W] -> [N, out_dim].

    Each stripe is pooled with average + max (the paper combines both), the stripe
    sequence (top to bottom) goes through a bi-LSTM, the 3 x 2 x hidden outputs are
    concatenated and an FC maps them to ``out_dim`` (the local triplet feature).
    """

    def __init__(self, in_channels: int, hidden: int = 256, out_dim: int = 128):
        super().__init__()
        self.lstm = nn.LSTM(in_channels, hidden, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(N_STRIPES * 2 * hidden, out_dim)
        nn.init.kaiming_normal_(self.fc.weight, mode="fan_out")
        nn.init.zeros_(self.fc.bias)
        self.out_dim = out_dim

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        stripes = F.adaptive_avg_pool2d(fmap, (N_STRIPES, 1)) + F.adaptive_max_pool2d(
            fmap, (N_STRIPES, 1)
        )
        seq = stripes.flatten(2).transpose(1, 2)  # [N, 3, C], head first
        out, _ = self.lstm(seq)
        return self.fc(out.flatten(1))
