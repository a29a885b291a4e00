"""A linear probe: how much of a known quantity a representation holds, linearly.

Closed-form ridge regression, so that the probe has no training schedule of its own to
tune and the same latents always give the same score.
"""

from __future__ import annotations

import torch

PENALTIES = tuple(10.0**k for k in range(-2, 6))
"""Ridge penalties tried (on standardised features); the fit picks one by leave-one-out."""


def ridge_r2(
    features: torch.Tensor,
    targets: torch.Tensor,
    train_fraction: float = 0.8,
    penalties: tuple[float, ...] = PENALTIES,
    fit_rows: int | None = None,
) -> float | None:
    """R^2 of a ridge fit on the first ``train_fraction`` of the rows, scored on the rest.

    Rows are in time order, so the score says how well a map learnt on earlier frames
    carries to later ones, not how well it interpolates between neighbours. Features are
    standardised with the fitting rows' statistics; a feature that (almost) does not
    vary there is left out, since divided by its tiny spread any change on the scored
    rows would swamp the prediction. The penalty is chosen among ``penalties`` by
    leave-one-out error on the fitting rows alone (the closed form, each row's residual
    over ``1 - h_ii``, with the centring held fixed), so that a map with nearly as many
    features as fitting rows is not scored after it has fitted their noise, and the
    scored rows never choose anything.
    R^2 pools the target columns: ``1 - SSE / SST`` with SST around the scored rows' own
    mean, so predicting that mean scores 0 and worse guesses go below.

    Args:
        features: ``(N, F)``.
        targets: ``(N, T)``.
        train_fraction: Share of rows (the earliest) to fit on.
        penalties: Candidate ridge penalties.
        fit_rows: How many rows (the earliest) to fit on, instead of ``train_fraction``:
            for a split of known size, which a fraction could miss by a row.

    Returns:
        The score, or None when there are too few rows to fit and score (fewer than 2
        scored rows or fewer fitting rows than features) or the scored targets do not
        vary (R^2 is undefined).
    """
    if features.dim() != 2 or targets.dim() != 2 or len(features) != len(targets):
        raise ValueError(
            f"ridge_r2 needs (N, F) features and (N, T) targets, got "
            f"{tuple(features.shape)} and {tuple(targets.shape)}"
        )
    x, y = features.double(), targets.double()
    cut = int(len(x) * train_fraction) if fit_rows is None else fit_rows
    if cut < 2 or len(x) - cut < 2:
        return None
    std = x[:cut].std(0)
    varying = std > max(1e-3 * float(std.median()), 1e-12)
    x, std = x[:, varying], std[varying]
    if cut < x.shape[1] or x.shape[1] == 0:
        return None
    mean = x[:cut].mean(0)
    fit = (x[:cut] - mean) / std
    test = (x[cut:] - mean) / std
    y_mean = y[:cut].mean(0)
    centred = y[:cut] - y_mean
    total = (y[cut:] - y[cut:].mean(0)).square().sum()
    if float(total) <= 1e-12:
        return None
    eye = torch.eye(fit.shape[1], dtype=fit.dtype)
    best: tuple[float, torch.Tensor] | None = None
    for penalty in penalties:
        inverse = torch.linalg.inv(fit.T @ fit + penalty * eye)
        weights = inverse @ fit.T @ centred
        leverage = ((fit @ inverse) * fit).sum(1, keepdim=True)
        loo = ((centred - fit @ weights) / (1 - leverage).clamp_min(1e-6)).square().sum()
        if best is None or float(loo) < best[0]:
            best = (float(loo), weights)
    assert best is not None
    predicted = test @ best[1] + y_mean
    residual = (y[cut:] - predicted).square().sum()
    return float(1.0 - residual / total)
