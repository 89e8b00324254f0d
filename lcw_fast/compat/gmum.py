"""The functions of the LCW-generator authors' `src/metrics/cw.py` (gmum/lcw-generator), with the
same names, signatures and numeric conventions, computed by lcw_fast's fused kernel sums in
O((n + m) D) memory instead of dense n x n matrices. An existing script switches with one line:

    from metrics.cw import cw_normality, cw_sampling, cw_sampling_silverman   # before
    from lcw_fast.compat.gmum import cw_normality, cw_sampling, cw_sampling_silverman   # after

Their conventions, and how they map onto lcw_fast (k(d) = (gamma + d / (2D - 3))^(-1/2)):

  cw_normality(X, y)      = lcw_fast.cw_normality(X, y) / C0: the normality index WITHOUT the factor
                            C0 = 1/(2 sqrt(pi)); y defaults to (4 / (3N))^0.4.
  cw_sampling(a, b, y)    = T * mean phi(d / (4y)) terms with T = 1 / (2 sqrt(pi y)) and
                            phi(s) = (1 + 4s / (2D - 3))^(-1/2); since T phi(d / (4y)) = C0 k(d) with
                            gamma = y, this is lcw_fast.cw_distance(a, b, gamma=y) (WITH C0). Samples
                            are flattened to (n, D) from their second dimension on (images work).
  cw_sampling_silverman(a, b) uses y = silverman_rule_of_thumb(b.std(), b.size(0)): the unbiased std
                            over all entries of the SECOND sample only, N its number of points (not
                            lcw_fast's std of both samples with N = (n + m) / 2).

Differences kept small on purpose: the bandwidth y is a constant (a tensor y is read with .item(), no
gradient flows into it); malformed inputs raise ValueError/TypeError instead of AssertionError; and
cw_sampling accepts samples of different sizes n and m (the original asserts equal shapes; the
means then run over n^2, m^2 and n m pairs). The "auto" backend is used (fused C++ on the CPU,
Triton or CUDA on GPUs).
"""
from typing import Union

import torch

from ..distance import cw_distance
from ..distance import cw_normality as _cw_normality
from ..reference import C0


def cw_normality(X: torch.Tensor, y: Union[torch.Tensor, float] = None) -> torch.Tensor:
    """Their normality index of X: (N, D) -> 0-dim tensor (X's dtype), = lcw_fast.cw_normality / C0.

    y: the bandwidth (float or one-element tensor); None: (4 / (3N))^0.4 (lcw_fast.normality_gamma).
    """
    return _cw_normality(X, y) / C0


def cw_sampling_silverman(first_sample: torch.Tensor, second_sample: torch.Tensor) -> torch.Tensor:
    """cw_sampling with y = silverman_rule_of_thumb(std of second_sample, its number of points)."""
    with torch.no_grad():
        gamma = silverman_rule_of_thumb(second_sample.std(), second_sample.size(0))
    return cw_sampling(first_sample, second_sample, gamma)


def cw_sampling(first_sample: torch.Tensor, second_sample: torch.Tensor, y: Union[float, torch.Tensor]) -> torch.Tensor:
    """Their CW distance between samples (n, ...) and (m, ...), flattened to (n, D) and (m, D)
    -> 0-dim tensor; equal to lcw_fast.cw_distance(first, second, gamma=y) (includes C0)."""
    return cw_distance(torch.flatten(first_sample, start_dim=1), torch.flatten(second_sample, start_dim=1), y)


def silverman_rule_of_thumb(stddev: torch.Tensor, N: int) -> torch.Tensor:
    """(1.06 * stddev * N^(-1/5))^2, in the type of stddev (a tensor stays a tensor, on its device).

    The formula of lcw_fast.silverman_gamma, kept in tensor arithmetic so that the result has the
    original's type, dtype and value to the last bit.
    """
    return (1.06 * stddev * N ** (-0.2)) ** 2
