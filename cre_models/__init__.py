"""The library: models, checkpoints and the steps from a video file to face scores.

It knows nothing about queues or Redis; :mod:`worker` imports it, never the other way round.
A video goes :mod:`.video` (open, probe, limits) -> :mod:`.sampling` (frames by timestamp)
-> :mod:`.faces` (RetinaFace) -> :mod:`.transforms` (crop -> tensor, as the checkpoint's
``config.json`` says) -> the model (:mod:`.model`, loaded by :mod:`.weights`) ->
:mod:`.tracks` and :mod:`.aggregate` (people and their scores). :mod:`.training` and
:mod:`.evaluation` walk the same steps; :mod:`.artefacts`, :mod:`.augmentation`,
:mod:`.codecs` and :mod:`.conditions` compress images the way platforms do.
"""
