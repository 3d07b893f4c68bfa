"""What an evaluation returns: `EvalResult` (one evaluation) and `FilesResult` (one per
features file, and their mean and standard deviation).

Plain data: `reidcli.eval.api` computes them, `reidcli.eval.report` presents them (table
rows, JSON, per-query CSV, pictures); both import them from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from reidcli.eval.ranking import Metrics, PerQuery, TopRanked


@dataclass
class EvalResult:
    """Metrics of one evaluation; for multi-trial protocols ``mean``/``std`` summarise
    the trials and ``metrics``/``per_query``/rows describe the first one. ``notes`` (in
    the JSON too) say how it was run, ``output_notes`` what writing the outputs found.
    ``ranked`` (when `reidcli.eval.api.evaluate` was asked to keep it) holds each query's nearest valid
    gallery items of the first trial under the distances the metrics used (re-ranked ones
    with ``rerank``); rows follow ``q_rows``, its columns index ``g_rows``."""

    protocol: str
    metric: str
    metrics: Metrics
    per_query: PerQuery
    q_rows: np.ndarray
    g_rows: np.ndarray
    mean: dict[str, float]
    std: dict[str, float] | None = None
    n_trials: int = 1
    rerank: bool = False
    notes: list[str] = field(default_factory=list)
    output_notes: list[str] = field(default_factory=list)
    cmc: np.ndarray | None = None
    rerank_options: dict | None = None
    inputs: dict | None = None
    ranked: TopRanked | None = None

    @property
    def messages(self) -> list[str]:
        """Every line meant for people, in order."""
        return [*self.notes, *self.output_notes]

    def as_dict(self) -> dict:
        """The ``--json`` object: metrics, how they were computed (protocol, metric, AP and
        CMC rules, re-ranking k1/k2/lambda), the whole CMC curve (``cmc[r-1]`` = matching
        rate at rank r, mean over trials) and, from `evaluate_file`, the input files with
        their digests and the checkpoints that made them."""
        out = {"protocol": self.protocol, "metric": self.metric, "rerank": self.rerank}
        if self.rerank_options is not None:
            out["rerank_options"] = self.rerank_options
        out.update({**self.metrics.as_dict(), **self.mean, "n_trials": self.n_trials})
        if self.std is not None:
            out["std"] = self.std
        if self.cmc is not None:
            out["cmc"] = [float(v) for v in self.cmc]
        if self.inputs is not None:
            out["inputs"] = self.inputs
        out["notes"] = self.notes
        return out



@dataclass
class FilesResult:
    """One evaluation per features file (RegDB's ten trials are ten files, one per
    ``idx/..._<t>.txt`` split) and the mean and standard deviation of their metrics over
    the files. A file's value is its own mean (over the draws of a multi-trial protocol)."""

    files: list[str]
    results: list[EvalResult]
    mean: dict[str, float]
    std: dict[str, float]
    output_notes: list[str] = field(default_factory=list)

    @property
    def protocol(self) -> str:
        return self.results[0].protocol

    @property
    def metric(self) -> str:
        return self.results[0].metric

    @property
    def messages(self) -> list[str]:
        """Every line meant for people, each once, prefixed by its file when not shared by all."""
        out = []
        for f, r in zip(self.files, self.results):
            for m in r.messages:
                shared = all(m in other.messages for other in self.results)
                line = m if shared else f"{f}: {m}"
                if line not in out:
                    out.append(line)
        return out + self.output_notes

    def as_dict(self) -> dict:
        return {"protocol": self.protocol, "metric": self.metric, "rerank": self.results[0].rerank,
                "n_files": len(self.files), **self.mean, "std": self.std,
                "files": [{"file": f, **r.as_dict()} for f, r in zip(self.files, self.results)]}
