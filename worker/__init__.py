"""The scoring service: RQ jobs that fetch a video, score it with :mod:`cre_models` and store
a validated record in Redis (:mod:`.jobs`, :mod:`.fetch`, :mod:`.scoring`, :mod:`.results`),
the queue and its workers, and the ``cre`` command (:mod:`.cli`)."""
