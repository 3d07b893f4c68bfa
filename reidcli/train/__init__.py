"""reidcli.train: the one training engine (`engine`), its method plug-ins (`methods`),
the engine hooks (`hooks`), DDP plumbing (`dist`), the configs (`config`: `TrainConfig`,
`FinetuneConfig`), and the `pretrain` and `finetune` library entries.

>>> from reidcli.train.config import TrainConfig              # doctest: +SKIP
>>> from reidcli.train.pretrain import pretrain              # doctest: +SKIP
"""

from reidcli.train.config import TrainConfig

__all__ = ["TrainConfig"]
