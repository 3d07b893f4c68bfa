"""reidcli.eval: distances, rank metrics (mAP / CMC / mINP), protocols, re-ranking, plots.

Library entry points (what ``reid evaluate`` calls)::

    from reidcli.eval import evaluate_file, Options, Outputs
    result = evaluate_file("f.h5", Options(metric="cosine"), outputs=Outputs(cmc_png="cmc.png"))
    print(result.mean["mAP"], result.mean["rank1"], result.messages)

Lower layers: `reidcli.eval.distance.distance_chunks`, `reidcli.eval.ranking.rank_queries`
(and its readable per-query twin `rank_queries_reference`) and `summarize`, the protocol
registry `reidcli.eval.protocols.PROTOCOLS`, `reidcli.eval.rerank.rerank_chunks`, and
`reidcli.eval.report` (table rows, JSON, per-query CSV and pictures).
"""

from __future__ import annotations

__all__ = ["EvalResult", "Options", "Outputs", "evaluate", "evaluate_file"]


def __getattr__(name: str):
    if name == "Outputs":
        from reidcli.eval.report import Outputs

        return Outputs
    if name in __all__:
        from reidcli.eval import api

        return getattr(api, name)
    raise AttributeError(f"module 'reidcli.eval' has no attribute '{name}'")
