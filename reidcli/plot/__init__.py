"""reidcli.plot: the library of ``reid plot``: pictures of a run, not of an evaluation.

    from reidcli.plot import plot
    report = plot("m.log.jsonl", "curves.png")    # training curves of a JSONL log
    report = plot("f.h5", "tsne.png", tsne=True)  # t-SNE of a features file's split
    report = plot("labels.h5", "sizes.png")       # cluster-size histogram of a labels file

`reidcli.plot.figures` holds it and its lower functions (`read_log`, `log_series`,
`training_curves`, `tsne_embedding`, `tsne_figure`, `cluster_size_histogram`). An
evaluation's own pictures (``reid evaluate --cmc-png / --ranks-png``) are
`reidcli.eval.plots`.
"""

from reidcli.plot.figures import TSNE_DEFAULTS, PlotReport, plot

__all__ = ["TSNE_DEFAULTS", "PlotReport", "plot"]
