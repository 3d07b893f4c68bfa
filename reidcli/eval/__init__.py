"""reidcli.eval: distances, rank metrics (mAP / CMC / mINP), protocols, re-ranking, plots.

Library entry points (what ``reid evaluate`` calls)::

    from reidcli.eval import evaluate_file, Options
    result, _, _ = evaluate_file("f.h5", Options(metric="cosine"))
    print(result.mean["mAP"], result.mean["rank1"])

Lower layers: `reidcli.eval.distance.distance_chunks`, `reidcli.eval.ranking.rank_queries`
and `summarize`, `reidcli.eval.protocols`, `reidcli.eval.rerank.rerank_chunks`.
"""

from __future__ import annotations

__all__ = ["EvalResult", "Options", "evaluate", "evaluate_file"]


def __getattr__(name: str):
    if name in __all__:
        from reidcli.eval import api

        return getattr(api, name)
    raise AttributeError(f"module 'reidcli.eval' has no attribute '{name}'")
