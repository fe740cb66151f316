"""Sampling the scenario's service-time distributions (seconds), vectorised."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from drills.scenario import Exponential, Fixed, Lognormal, Uniform


def sample(
    dist: Fixed | Exponential | Lognormal | Uniform,
    rng: np.random.Generator,
    size: int | tuple[int, ...],
) -> NDArray[np.float64]:
    """``size`` draws of ``dist`` in seconds. A lognormal is given by the mean and standard
    deviation of the time itself: ``sigma^2 = ln(1 + sd^2/mean^2)``, ``mu = ln(mean) - sigma^2/2``.
    """
    if isinstance(dist, Fixed):
        return np.full(size, float(dist.value))
    if isinstance(dist, Exponential):
        return rng.exponential(dist.mean, size)
    if isinstance(dist, Lognormal):
        if dist.sd == 0:
            return np.full(size, float(dist.mean))
        sigma2 = math.log1p((dist.sd / dist.mean) ** 2)
        return rng.lognormal(math.log(dist.mean) - sigma2 / 2, math.sqrt(sigma2), size)
    return rng.uniform(dist.low, dist.high, size)
