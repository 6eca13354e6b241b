"""``input.flip_average`` (config.json): each crop and its mirror image, averaged."""

from __future__ import annotations

import numpy as np
import pytest

from cre_models.weights import InputSpec
from worker.settings import Settings


def test_flip_average_is_the_mean_of_the_crop_and_its_mirror() -> None:
    from worker.scoring import Scorer

    scorer = Scorer(Settings(weights="default", torch_threads=1))
    assert scorer.config.input.flip_average is False  # the shipped default scores one view
    size = scorer.config.input.size
    crops = list(np.random.default_rng(0).integers(0, 255, (3, size, size, 3), dtype=np.uint8))
    plain = scorer.predict(crops)
    mirrored = scorer.predict([np.ascontiguousarray(c[:, ::-1]) for c in crops])
    assert not np.allclose(plain, mirrored, atol=1e-4)  # the model is not exactly symmetric
    scorer.config.input.flip_average = True
    both = scorer.predict(crops)
    assert both == pytest.approx((plain + mirrored) / 2, abs=1e-5)


def test_flip_average_defaults_off_and_round_trips() -> None:
    assert InputSpec().flip_average is False
    spec = InputSpec(flip_average=True)
    assert InputSpec.model_validate_json(spec.model_dump_json()).flip_average is True
