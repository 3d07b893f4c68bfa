"""reidcli: person re-identification with unsupervised domain adaptation.

Every command of the `reid` toolchain is a library function first; see the
subpackages `io`, `data`, `models`, `losses`, `train`, `cluster`, `eval`, `pose`.
"""

__version__ = "0.1.0"
