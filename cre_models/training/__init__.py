"""Training: identity splits, the video crop cache, self-blends and the training loop.

Every face the model trains on comes from the same path the worker scores with
(:mod:`cre_models.faces` crops of frames sampled by the worker's sampler), cached on disk
by :mod:`cre_models.training.cache` so epochs never decode again.
"""
