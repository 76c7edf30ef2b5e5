"""Optimizers as ``(init, update)`` pairs of pure functions, written once against ``xp``.

``ck.optim.gd``, ``momentum``, ``nesterov``, ``delayed_gd``, ``adam``, ``newton``, ... each
return an :class:`~convexkit.optim.base.Optimizer`. Every hyperparameter accepts a scalar,
an array of shape (B,) broadcast over the batch, or a SymPy expression; ``lr`` also accepts a
schedule (see :mod:`convexkit.schedules`). Methods whose PyTorch counterpart differs from the
seeds' formulas take ``convention="torch"`` to reproduce PyTorch's documented update exactly;
every factory takes ``weight_decay=`` (PyTorch's coupled L2 decay, see
:func:`with_weight_decay`).
"""

from .adaptive import (
    AdadeltaState,
    AdagradState,
    AdamState,
    AmsgradState,
    RMSpropState,
    adadelta,
    adagrad,
    adam,
    amsgrad,
    rmsprop,
    yogi,
)
from .base import Optimizer, check_hyperparameter, hyperparameter
from .first_order import (
    CONVENTIONS,
    MomentumState,
    delayed_gd,
    gd,
    line_search_gd,
    momentum,
    nesterov,
    preconditioned_gd,
    sgd,
)
from .second_order import LBFGSState, lbfgs, newton
from .wrappers import projected, with_weight_decay

__all__ = [
    "CONVENTIONS",
    "AdadeltaState",
    "AdagradState",
    "AdamState",
    "AmsgradState",
    "LBFGSState",
    "MomentumState",
    "Optimizer",
    "RMSpropState",
    "adadelta",
    "adagrad",
    "adam",
    "amsgrad",
    "check_hyperparameter",
    "delayed_gd",
    "gd",
    "hyperparameter",
    "lbfgs",
    "line_search_gd",
    "momentum",
    "nesterov",
    "newton",
    "preconditioned_gd",
    "projected",
    "rmsprop",
    "sgd",
    "with_weight_decay",
    "yogi",
]
