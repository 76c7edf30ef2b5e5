"""Every optimizer with an elementwise symbolic form, with random hyperparameters: the cases
the generated kernels (numba and CUDA) are checked on."""

from __future__ import annotations

import sympy as sp

import convexkit as ck

ROWS = 3


def _uniform(rng, low, high, array):
    return rng.uniform(low, high, ROWS) if array else float(rng.uniform(low, high))


# name -> factory(rng, array) building the optimizer with random hyperparameters
FUSABLE = {
    "gd": lambda r, a: ck.optim.gd(_uniform(r, 0.0, 1.0, a)),
    "momentum": lambda r, a: ck.optim.momentum(_uniform(r, 0.0, 1.0, a), _uniform(r, 0, 1, a)),
    "nesterov": lambda r, a: ck.optim.nesterov(_uniform(r, 0.0, 1.0, a), _uniform(r, 0, 1, a)),
    "delayed_gd": lambda r, a: ck.optim.delayed_gd(_uniform(r, 0.0, 1.0, a), 3),
    "adagrad": lambda r, a: ck.optim.adagrad(
        _uniform(r, 0.0, 1.0, a), weight_decay=_uniform(r, 0, 0.1, a)
    ),
    "rmsprop": lambda r, a: ck.optim.rmsprop(_uniform(r, 0.0, 1.0, a), _uniform(r, 0, 1, a)),
    "rmsprop_torch": lambda r, a: ck.optim.rmsprop(_uniform(r, 0.0, 1.0, a), convention="torch"),
    "adadelta": lambda r, a: ck.optim.adadelta(_uniform(r, 0.1, 0.99, a)),
    "adam": lambda r, a: ck.optim.adam(
        _uniform(r, 0.0, 1.0, a), _uniform(r, 0, 0.99, a), _uniform(r, 0.9, 0.9999, a)
    ),
    "yogi": lambda r, a: ck.optim.yogi(_uniform(r, 0.0, 1.0, a)),
    "amsgrad": lambda r, a: ck.optim.amsgrad(_uniform(r, 0.0, 1.0, a)),
}


def quadratic_problem() -> ck.Problem:
    """f = lam x^2 / 2 with lam a parameter: one curvature per trajectory."""
    lam = sp.Symbol("lam", positive=True)
    return ck.Problem(lam * sp.Symbol("x") ** 2 / 2, params=[lam])
