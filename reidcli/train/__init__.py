"""reidcli.train: the one training engine (`engine`), its method plug-ins (`methods`),
BN variants (`bn`), DDP plumbing (`dist`), and the `pretrain` library entry.

>>> from reidcli.train.config import TrainConfig              # doctest: +SKIP
>>> from reidcli.train.pretrain import pretrain              # doctest: +SKIP
"""

from reidcli.train.config import TrainConfig

__all__ = ["TrainConfig"]
