"""The ridge probe: high where the targets are linear in the features, not elsewhere."""

from __future__ import annotations

import pytest
import torch

from ami.evaluation import ridge_r2


def test_a_linear_target_is_recovered_almost_exactly() -> None:
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(400, 16, generator=generator) * 5 + 3
    targets = features @ torch.randn(16, 2, generator=generator)
    targets += 0.01 * torch.randn(400, 2, generator=generator)

    score = ridge_r2(features, targets)

    assert score is not None and score > 0.99


def test_targets_unrelated_to_the_features_score_near_zero_or_below() -> None:
    generator = torch.Generator().manual_seed(1)
    features = torch.randn(500, 8, generator=generator)
    targets = torch.randn(500, 2, generator=generator)

    score = ridge_r2(features, targets)

    assert score is not None and score < 0.05


def test_the_score_is_on_the_latest_rows_not_the_fitted_ones() -> None:
    # The target follows the features in the first 80% of rows and not in the rest:
    # a probe scored on what it fitted would look perfect.
    generator = torch.Generator().manual_seed(2)
    features = torch.randn(500, 4, generator=generator)
    targets = features[:, :1].clone()
    targets[400:] = torch.randn(100, 1, generator=generator)

    score = ridge_r2(features, targets)

    assert score is not None and score < 0.1


def test_too_few_rows_or_constant_targets_have_no_score() -> None:
    assert ridge_r2(torch.randn(10, 16), torch.randn(10, 2)) is None  # fewer rows than features
    assert ridge_r2(torch.randn(100, 4), torch.ones(100, 2)) is None


def test_a_feature_still_on_the_fitting_rows_cannot_swamp_the_scored_ones() -> None:
    # A column that barely moves while fitting (one 1e-4) and varies freely when scored:
    # divided by its fitting spread it would dominate every prediction.
    generator = torch.Generator().manual_seed(4)
    features = torch.randn(500, 4, generator=generator)
    targets = features[:, :2] + 0.05 * torch.randn(500, 2, generator=generator)
    still = torch.zeros(500, 1)
    still[10] = 1e-4
    still[400:] = torch.rand(100, 1, generator=generator)

    score = ridge_r2(torch.cat([features, still], dim=1), targets)

    assert score is not None and score > 0.99  # it was -67,000 before such columns were left out


def test_a_split_of_known_size_fits_exactly_those_rows() -> None:
    # 156 rows, the first 124 to fit: as a fraction, 124 / 156 gives a cut of 123 and
    # scores row 123, an outlier that fitting absorbs but scoring cannot.
    generator = torch.Generator().manual_seed(5)
    features = torch.randn(156, 3, generator=generator)
    targets = features[:, :1].clone()
    targets[123] = 12.0

    by_rows = ridge_r2(features, targets, fit_rows=124)
    by_fraction = ridge_r2(features, targets, train_fraction=124 / 156)

    assert by_rows is not None and by_fraction is not None
    assert by_rows > 0.9
    assert by_fraction < 0.3


def test_mismatched_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match=r"\(N, F\) features and \(N, T\) targets"):
        ridge_r2(torch.randn(10, 4), torch.randn(9, 2))


def test_with_more_features_than_the_frames_support_the_penalty_keeps_the_probe_honest() -> None:
    # 64 latent entries, 84 frames (67 to fit), the pose in two of them: a barely
    # penalised fit chases the noise of the other 62; the leave-one-out choice does not.
    generator = torch.Generator().manual_seed(3)
    features = torch.randn(84, 64, generator=generator)
    targets = features[:, :2] + 0.3 * torch.randn(84, 2, generator=generator)

    chosen = ridge_r2(features, targets)
    barely = ridge_r2(features, targets, penalties=(1e-2,))

    assert chosen is not None and barely is not None
    assert chosen > 0.5
    assert barely < 0.0
