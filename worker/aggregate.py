"""Face scores of a person track -> track score: the strategies live in
:mod:`cre_models.aggregate` (the video score is the max over tracks, :mod:`cre_models.tracks`).

Re-exported here because the worker's code and users' scripts import them from
``worker.aggregate``; the evaluation (``cre_models.evaluate``) uses the same functions, so
the default chosen there is exactly what the worker runs.
"""

from cre_models.aggregate import (
    STRATEGIES,
    aggregate,
    check_strategy,
    confident_score,
    max_score,
    mean_score,
    topk_mean_score,
)

__all__ = [
    "STRATEGIES",
    "aggregate",
    "mean_score",
    "max_score",
    "topk_mean_score",
    "confident_score",
    "check_strategy",
]
