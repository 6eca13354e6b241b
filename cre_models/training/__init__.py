"""Training, two recipes on one path: every face comes from the worker's own steps.

Frames sampled by :mod:`cre_models.sampling`, faces found by :mod:`cre_models.faces` and
cut by :mod:`cre_models.transforms`, fakes self-blended by :mod:`.sbi`.

* ``cre train-videos`` (labelled videos): identity split (:mod:`.splits`), crop cache
  (:mod:`.cache`), training loop (:mod:`.loop`), command line (:mod:`.cli`).
* ``cre train`` (folders of face images and videos, the seed's two stages): face crops
  (:mod:`.data`), recipe and items (:mod:`.images`), the stages (:mod:`.stages`), metrics
  and curves (:mod:`.plots`), model card (:mod:`.card`), command line (:mod:`.images_cli`).
"""
