"""Optimizers against plain scalar references of their formulas, PyTorch's documented rules,
batches against single runs, backends against NumPy, and the exact maps on SymPy symbols."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

from convexkit import optim, schedules
from convexkit.backend import asarray, to_numpy

# ---------------------------------------------------------------------------------------------
# Plain references: Python floats, loops over steps and coordinates, written from the seeds'
# formulas (sections 11.3 to 11.10) and PyTorch's documented update rules.
# ---------------------------------------------------------------------------------------------


def ref_gd(x0, grads, lr):
    x, out = list(x0), [list(x0)]
    for g in grads:
        x = [x[i] - lr * g[i] for i in range(len(x))]
        out.append(list(x))
    return out


def ref_momentum(x0, grads, lr, beta, dampening=0.0):
    x, v, out = list(x0), [0.0] * len(x0), [list(x0)]
    for g in grads:
        for i in range(len(x)):
            v[i] = beta * v[i] + (1 - dampening) * g[i]
            x[i] = x[i] - lr * v[i]
        out.append(list(x))
    return out


def ref_nesterov(x0, grads, lr, beta):
    x, v, out = list(x0), [0.0] * len(x0), [list(x0)]
    for g in grads:
        for i in range(len(x)):
            v[i] = beta * v[i] + g[i]
            x[i] = x[i] - lr * (g[i] + beta * v[i])
        out.append(list(x))
    return out


def ref_delayed_gd(x0, grads, lr, tau):
    x, seen, out = list(x0), [], [list(x0)]
    for t, g in enumerate(grads):
        seen.append(list(g))
        stale = seen[t - tau] if t >= tau else [0.0] * len(x)
        x = [x[i] - lr * stale[i] for i in range(len(x))]
        out.append(list(x))
    return out


def ref_preconditioned(x0, grads, lr, diag):
    x, out = list(x0), [list(x0)]
    for g in grads:
        x = [x[i] - lr * g[i] / diag[i] for i in range(len(x))]
        out.append(list(x))
    return out


def ref_adagrad(x0, grads, lr, eps):
    x, s, out = list(x0), [0.0] * len(x0), [list(x0)]
    for g in grads:
        for i in range(len(x)):
            s[i] += g[i] ** 2
            x[i] -= lr * g[i] / math.sqrt(s[i] + eps)
        out.append(list(x))
    return out


def ref_rmsprop(x0, grads, lr, gamma, eps):
    x, s, out = list(x0), [0.0] * len(x0), [list(x0)]
    for g in grads:
        for i in range(len(x)):
            s[i] = gamma * s[i] + (1 - gamma) * g[i] ** 2
            x[i] -= lr * g[i] / math.sqrt(s[i] + eps)
        out.append(list(x))
    return out


def ref_adadelta(x0, grads, rho, eps):
    x, s, delta, out = list(x0), [0.0] * len(x0), [0.0] * len(x0), [list(x0)]
    for g in grads:
        for i in range(len(x)):
            s[i] = rho * s[i] + (1 - rho) * g[i] ** 2
            change = math.sqrt(delta[i] + eps) / math.sqrt(s[i] + eps) * g[i]
            x[i] -= change
            delta[i] = rho * delta[i] + (1 - rho) * change**2
        out.append(list(x))
    return out


def ref_adam(x0, grads, lr, beta1, beta2, eps):
    x, v, s, out = list(x0), [0.0] * len(x0), [0.0] * len(x0), [list(x0)]
    for t, g in enumerate(grads, start=1):
        for i in range(len(x)):
            v[i] = beta1 * v[i] + (1 - beta1) * g[i]
            s[i] = beta2 * s[i] + (1 - beta2) * g[i] ** 2
            v_hat = v[i] / (1 - beta1**t)
            s_hat = s[i] / (1 - beta2**t)
            x[i] -= lr * v_hat / (math.sqrt(s_hat) + eps)
        out.append(list(x))
    return out


def ref_yogi(x0, grads, lr, beta1, beta2, eps):
    x, v, s, out = list(x0), [0.0] * len(x0), [0.0] * len(x0), [list(x0)]
    for t, g in enumerate(grads, start=1):
        for i in range(len(x)):
            v[i] = beta1 * v[i] + (1 - beta1) * g[i]
            diff = g[i] ** 2 - s[i]
            sign = (diff > 0) - (diff < 0)
            s[i] = s[i] + (1 - beta2) * g[i] ** 2 * sign
            x[i] -= lr * (v[i] / (1 - beta1**t)) / (math.sqrt(s[i] / (1 - beta2**t)) + eps)
        out.append(list(x))
    return out


def ref_amsgrad(x0, grads, lr, beta1, beta2, eps):
    n = len(x0)
    x, v, s, s_max, out = list(x0), [0.0] * n, [0.0] * n, [0.0] * n, [list(x0)]
    for t, g in enumerate(grads, start=1):
        for i in range(n):
            v[i] = beta1 * v[i] + (1 - beta1) * g[i]
            s[i] = beta2 * s[i] + (1 - beta2) * g[i] ** 2
            s_max[i] = max(s_max[i], s[i])
            x[i] -= lr * (v[i] / (1 - beta1**t)) / (math.sqrt(s_max[i] / (1 - beta2**t)) + eps)
        out.append(list(x))
    return out


# PyTorch's documented rules (torch.optim docs, "Algorithm" boxes), t counted from 1.


def torch_sgd(x0, grads, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    theta, out, b = list(x0), [list(x0)], None
    for t, grad in enumerate(grads, start=1):
        g = [grad[i] + weight_decay * theta[i] for i in range(len(theta))]
        if momentum != 0:
            if t > 1:
                b = [momentum * b[i] + (1 - dampening) * g[i] for i in range(len(g))]
            else:
                b = list(g)
            g = [g[i] + momentum * b[i] for i in range(len(g))] if nesterov else list(b)
        theta = [theta[i] - lr * g[i] for i in range(len(g))]
        out.append(list(theta))
    return out


def torch_adagrad(x0, grads, lr, lr_decay=0.0, weight_decay=0.0, initial=0.0, eps=1e-10):
    theta, out, total = list(x0), [list(x0)], [initial] * len(x0)
    for t, grad in enumerate(grads, start=1):
        for i in range(len(theta)):
            g = grad[i] + weight_decay * theta[i]
            clr = lr / (1 + (t - 1) * lr_decay)
            total[i] += g * g
            theta[i] -= clr * g / (math.sqrt(total[i]) + eps)
        out.append(list(theta))
    return out


def torch_rmsprop(
    x0, grads, lr, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False
):
    n = len(x0)
    theta, out, v, buf, g_ave = list(x0), [list(x0)], [0.0] * n, [0.0] * n, [0.0] * n
    for grad in grads:
        for i in range(n):
            g = grad[i] + weight_decay * theta[i]
            v[i] = alpha * v[i] + (1 - alpha) * g * g
            v_tilde = v[i]
            if centered:
                g_ave[i] = g_ave[i] * alpha + (1 - alpha) * g
                v_tilde = v_tilde - g_ave[i] ** 2
            if momentum > 0:
                buf[i] = momentum * buf[i] + g / (math.sqrt(v_tilde) + eps)
                theta[i] -= lr * buf[i]
            else:
                theta[i] -= lr * g / (math.sqrt(v_tilde) + eps)
        out.append(list(theta))
    return out


def torch_adadelta(x0, grads, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0):
    n = len(x0)
    theta, out, v, u = list(x0), [list(x0)], [0.0] * n, [0.0] * n
    for grad in grads:
        for i in range(n):
            g = grad[i] + weight_decay * theta[i]
            v[i] = v[i] * rho + g * g * (1 - rho)
            dx = math.sqrt(u[i] + eps) / math.sqrt(v[i] + eps) * g
            u[i] = u[i] * rho + dx * dx * (1 - rho)
            theta[i] -= lr * dx
        out.append(list(theta))
    return out


def torch_adam(x0, grads, lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, amsgrad=False):
    n = len(x0)
    theta, out, m, v, v_max = list(x0), [list(x0)], [0.0] * n, [0.0] * n, [0.0] * n
    for t, grad in enumerate(grads, start=1):
        for i in range(n):
            g = grad[i] + weight_decay * theta[i]
            m[i] = beta1 * m[i] + (1 - beta1) * g
            v[i] = beta2 * v[i] + (1 - beta2) * g * g
            m_hat = m[i] / (1 - beta1**t)
            if amsgrad:
                v_max[i] = max(v_max[i], v[i])
                v_hat = v_max[i] / (1 - beta2**t)
            else:
                v_hat = v[i] / (1 - beta2**t)
            theta[i] -= lr * m_hat / (math.sqrt(v_hat) + eps)
        out.append(list(theta))
    return out


# ---------------------------------------------------------------------------------------------
# Drivers
# ---------------------------------------------------------------------------------------------


def drive(opt, x0, grads, oracle=None):
    """Iterates of ``opt`` fed the gradients ``grads`` (T, B, d) in turn: shape (T+1, B, d)."""
    x, state = x0, opt.init(x0)
    out = [to_numpy(x)]
    for step in range(grads.shape[0]):
        x, state = opt.update(x, grads[step], state, step, oracle)
        out.append(to_numpy(x))
    return np.stack(out)


def drive_oracle(opt, x0, oracle, steps):
    """Iterates of ``opt`` on ``oracle`` (gradients at the iterates): shape (steps+1, B, d)."""
    x, state = x0, opt.init(x0)
    out = [to_numpy(x)]
    for step in range(steps):
        x, state = opt.update(x, oracle.grad(x), state, step, oracle)
        out.append(to_numpy(x))
    return np.stack(out)


def draw(seed, steps=8, d=3, scale=2.0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(1, d)), scale * rng.normal(size=(steps, 1, d))


def as_lists(x0, grads):
    return x0[0].tolist(), [g[0].tolist() for g in grads]


unit = st.floats(0.05, 0.95)
rates = st.floats(1e-3, 0.5)
seeds = st.integers(0, 2**32 - 1)

# (name, optimizer factory, reference, hyperparameter strategy)
SEED_CASES = [
    ("gd", lambda h: optim.gd(h["lr"]), lambda x, g, h: ref_gd(x, g, h["lr"]), {"lr": rates}),
    ("sgd", lambda h: optim.sgd(h["lr"]), lambda x, g, h: ref_gd(x, g, h["lr"]), {"lr": rates}),
    (
        "momentum",
        lambda h: optim.momentum(h["lr"], h["beta"], dampening=h["d"]),
        lambda x, g, h: ref_momentum(x, g, h["lr"], h["beta"], h["d"]),
        {"lr": rates, "beta": unit, "d": st.floats(0.0, 0.9)},
    ),
    (
        "nesterov",
        lambda h: optim.nesterov(h["lr"], h["beta"]),
        lambda x, g, h: ref_nesterov(x, g, h["lr"], h["beta"]),
        {"lr": rates, "beta": unit},
    ),
    (
        "delayed_gd",
        lambda h: optim.delayed_gd(h["lr"], h["tau"]),
        lambda x, g, h: ref_delayed_gd(x, g, h["lr"], h["tau"]),
        {"lr": rates, "tau": st.integers(0, 4)},
    ),
    (
        "preconditioned_gd",
        lambda h: optim.preconditioned_gd(h["lr"], np.asarray(h["diag"])),
        lambda x, g, h: ref_preconditioned(x, g, h["lr"], h["diag"]),
        {"lr": rates, "diag": st.lists(st.floats(0.1, 10.0), min_size=3, max_size=3)},
    ),
    (
        "adagrad",
        lambda h: optim.adagrad(h["lr"], h["eps"]),
        lambda x, g, h: ref_adagrad(x, g, h["lr"], h["eps"]),
        {"lr": rates, "eps": st.floats(1e-8, 1e-2)},
    ),
    (
        "rmsprop",
        lambda h: optim.rmsprop(h["lr"], h["gamma"], h["eps"]),
        lambda x, g, h: ref_rmsprop(x, g, h["lr"], h["gamma"], h["eps"]),
        {"lr": rates, "gamma": unit, "eps": st.floats(1e-8, 1e-2)},
    ),
    (
        "adadelta",
        lambda h: optim.adadelta(h["rho"], h["eps"]),
        lambda x, g, h: ref_adadelta(x, g, h["rho"], h["eps"]),
        {"rho": unit, "eps": st.floats(1e-7, 1e-2)},
    ),
    (
        "adam",
        lambda h: optim.adam(h["lr"], h["b1"], h["b2"], h["eps"]),
        lambda x, g, h: ref_adam(x, g, h["lr"], h["b1"], h["b2"], h["eps"]),
        {"lr": rates, "b1": unit, "b2": st.floats(0.5, 0.9999), "eps": st.floats(1e-8, 1e-2)},
    ),
    (
        "yogi",
        lambda h: optim.yogi(h["lr"], h["b1"], h["b2"], h["eps"]),
        lambda x, g, h: ref_yogi(x, g, h["lr"], h["b1"], h["b2"], h["eps"]),
        {"lr": rates, "b1": unit, "b2": st.floats(0.5, 0.9999), "eps": st.floats(1e-4, 1e-1)},
    ),
    (
        "amsgrad",
        lambda h: optim.amsgrad(h["lr"], h["b1"], h["b2"], h["eps"]),
        lambda x, g, h: ref_amsgrad(x, g, h["lr"], h["b1"], h["b2"], h["eps"]),
        {"lr": rates, "b1": unit, "b2": st.floats(0.5, 0.9999), "eps": st.floats(1e-8, 1e-2)},
    ),
]


@pytest.mark.parametrize("name, make, reference, space", SEED_CASES, ids=[c[0] for c in SEED_CASES])
@given(data=st.data(), seed=seeds)
def test_matches_scalar_reference(name, make, reference, space, data, seed):
    hyper = data.draw(st.fixed_dictionaries(space))
    x0, grads = draw(seed)
    got = drive(make(hyper), x0, grads)[:, 0, :]
    expected = np.array(reference(*as_lists(x0, grads), hyper))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_seed_defaults():
    """Defaults as the seeds write them (d2l) and as torch.optim does (torch)."""
    assert optim.momentum(0.1).hyperparams["beta"] == 0.9
    assert optim.adagrad(0.1).hyperparams["eps"] == 1e-6
    assert optim.rmsprop(0.1).hyperparams == {"lr": 0.1, "gamma": 0.9, "eps": 1e-6}
    assert optim.adadelta().hyperparams == {"rho": 0.9, "eps": 1e-5}
    adam = optim.adam(0.1).hyperparams
    assert (adam["beta1"], adam["beta2"], adam["eps"]) == (0.9, 0.999, 1e-6)
    assert optim.yogi(0.1).hyperparams["eps"] == 1e-3
    assert optim.adagrad(0.1, convention="torch").hyperparams["eps"] == 1e-10
    torch_rms = optim.rmsprop(0.1, convention="torch").hyperparams
    assert (torch_rms["gamma"], torch_rms["eps"]) == (0.99, 1e-8)
    assert optim.adadelta(convention="torch").hyperparams["eps"] == 1e-6
    assert optim.adam(0.1, convention="torch").hyperparams["eps"] == 1e-8
    assert optim.amsgrad(0.1, convention="torch").hyperparams["eps"] == 1e-8


# ---------------------------------------------------------------------------------------------
# PyTorch's documented rules
# ---------------------------------------------------------------------------------------------

decays = st.floats(0.0, 0.3)

TORCH_CASES = [
    (
        "sgd-momentum-dampening",
        lambda h: optim.momentum(
            h["lr"], h["mu"], dampening=h["d"], weight_decay=h["wd"], convention="torch"
        ),
        lambda x, g, h: torch_sgd(x, g, h["lr"], h["mu"], h["d"], h["wd"]),
        {"lr": rates, "mu": unit, "d": st.floats(0.0, 0.9), "wd": decays},
    ),
    (
        "sgd-plain",
        lambda h: optim.sgd(h["lr"], weight_decay=h["wd"]),
        lambda x, g, h: torch_sgd(x, g, h["lr"], weight_decay=h["wd"]),
        {"lr": rates, "wd": decays},
    ),
    (
        "sgd-nesterov",
        lambda h: optim.nesterov(h["lr"], h["mu"], weight_decay=h["wd"]),
        lambda x, g, h: torch_sgd(x, g, h["lr"], h["mu"], weight_decay=h["wd"], nesterov=True),
        {"lr": rates, "mu": unit, "wd": decays},
    ),
    (
        "adagrad",
        lambda h: optim.adagrad(
            h["lr"],
            lr_decay=h["decay"],
            initial_accumulator_value=h["init"],
            weight_decay=h["wd"],
            convention="torch",
        ),
        lambda x, g, h: torch_adagrad(x, g, h["lr"], h["decay"], h["wd"], h["init"]),
        {"lr": rates, "decay": decays, "init": st.floats(0.0, 1.0), "wd": decays},
    ),
    (
        "rmsprop",
        lambda h: optim.rmsprop(
            h["lr"],
            momentum=h["mu"],
            centered=h["centered"],
            weight_decay=h["wd"],
            convention="torch",
        ),
        lambda x, g, h: torch_rmsprop(
            x, g, h["lr"], momentum=h["mu"], centered=h["centered"], weight_decay=h["wd"]
        ),
        {
            "lr": rates,
            "mu": st.sampled_from([0.0, 0.5, 0.9]),
            "centered": st.booleans(),
            "wd": decays,
        },
    ),
    (
        "adadelta",
        lambda h: optim.adadelta(h["rho"], lr=h["lr"], weight_decay=h["wd"], convention="torch"),
        lambda x, g, h: torch_adadelta(x, g, h["lr"], h["rho"], weight_decay=h["wd"]),
        {"lr": st.floats(0.1, 2.0), "rho": unit, "wd": decays},
    ),
    (
        "adam",
        lambda h: optim.adam(h["lr"], h["b1"], h["b2"], weight_decay=h["wd"], convention="torch"),
        lambda x, g, h: torch_adam(x, g, h["lr"], h["b1"], h["b2"], weight_decay=h["wd"]),
        {"lr": rates, "b1": unit, "b2": st.floats(0.5, 0.9999), "wd": decays},
    ),
    (
        "adam-amsgrad",
        lambda h: optim.amsgrad(
            h["lr"], h["b1"], h["b2"], weight_decay=h["wd"], convention="torch"
        ),
        lambda x, g, h: torch_adam(
            x, g, h["lr"], h["b1"], h["b2"], weight_decay=h["wd"], amsgrad=True
        ),
        {"lr": rates, "b1": unit, "b2": st.floats(0.5, 0.9999), "wd": decays},
    ),
]


@pytest.mark.parametrize(
    "name, make, reference, space", TORCH_CASES, ids=[c[0] for c in TORCH_CASES]
)
@given(data=st.data(), seed=seeds)
def test_torch_convention_matches_documented_rule(name, make, reference, space, data, seed):
    hyper = data.draw(st.fixed_dictionaries(space))
    x0, grads = draw(seed)
    got = drive(make(hyper), x0, grads)[:, 0, :]
    expected = np.array(reference(*as_lists(x0, grads), hyper))
    np.testing.assert_allclose(got, expected, rtol=1e-11, atol=1e-12)


def test_conventions_differ_where_torch_differs():
    """The torch rules are not the seeds' rules in disguise: one step tells them apart."""
    x0, grads = draw(3, steps=3)
    for d2l, torch in [
        (optim.adagrad(0.1, 1e-3), optim.adagrad(0.1, 1e-3, convention="torch")),
        (optim.rmsprop(0.1, 0.9, 1e-3), optim.rmsprop(0.1, 0.9, 1e-3, convention="torch")),
        (
            optim.momentum(0.1, 0.9, dampening=0.5),
            optim.momentum(0.1, 0.9, dampening=0.5, convention="torch"),
        ),
    ]:
        assert np.max(np.abs(drive(d2l, x0, grads) - drive(torch, x0, grads))) > 1e-6


def test_against_real_torch():
    torch = pytest.importorskip(
        "torch",
        reason="PyTorch is not installed; the documented "
        "rules are checked by test_torch_convention_matches_documented_rule",
    )
    x0, grads = draw(11, steps=12)
    pairs = [
        (
            lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.8, dampening=0.3, weight_decay=0.05),
            optim.momentum(0.1, 0.8, dampening=0.3, weight_decay=0.05, convention="torch"),
        ),
        (
            lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.05),
            optim.nesterov(0.1, 0.8, weight_decay=0.05),
        ),
        (
            lambda p: torch.optim.Adagrad(p, lr=0.1, lr_decay=0.1, initial_accumulator_value=0.2),
            optim.adagrad(0.1, lr_decay=0.1, initial_accumulator_value=0.2, convention="torch"),
        ),
        (
            lambda p: torch.optim.RMSprop(p, lr=0.01, momentum=0.5, centered=True),
            optim.rmsprop(0.01, momentum=0.5, centered=True, convention="torch"),
        ),
        (
            lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9),
            optim.rmsprop(0.01, 0.9, convention="torch"),
        ),
        (
            lambda p: torch.optim.Adadelta(p, lr=0.5, weight_decay=0.1),
            optim.adadelta(lr=0.5, weight_decay=0.1, convention="torch"),
        ),
        (
            lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=0.1),
            optim.adam(0.01, weight_decay=0.1, convention="torch"),
        ),
        (
            lambda p: torch.optim.Adam(p, lr=0.01, amsgrad=True),
            optim.amsgrad(0.01, convention="torch"),
        ),
    ]
    for make_torch, ours in pairs:
        param = torch.tensor(x0[0], dtype=torch.float64, requires_grad=True)
        opt = make_torch([param])
        expected = [x0[0].copy()]
        for g in grads:
            param.grad = torch.tensor(g[0], dtype=torch.float64)
            opt.step()
            expected.append(param.detach().numpy().copy())
        got = drive(ours, x0, grads)[:, 0, :]
        np.testing.assert_allclose(
            got, np.array(expected), rtol=1e-10, atol=1e-12, err_msg=repr(ours)
        )


# ---------------------------------------------------------------------------------------------
# Objectives for methods that ask the oracle (local, so these tests stand on their own)
# ---------------------------------------------------------------------------------------------


class Quadratic:
    """f(x) = ½ xᵀAx − bᵀx on a batch, in the namespace and device of the arrays given."""

    def __init__(self, A, b, xp=np, device=None):
        self.A_host, self.b_host = np.asarray(A, float), np.asarray(b, float)
        self.A = asarray(self.A_host, xp, device=device)
        self.b = asarray(self.b_host, xp, device=device)
        self.xp = xp

    def value(self, x):
        return self.xp.sum(x * (0.5 * self.xp.matmul(x, self.A) - self.b), axis=-1)

    def grad(self, x):
        return self.xp.matmul(x, self.A) - self.b

    def hess(self, x):
        n = self.A.shape[0]
        return self.xp.zeros((x.shape[0], n, n), dtype=x.dtype, device=x.device) + self.A


class XCos:
    """The seeds' nonconvex example f(x) = x cos(c x), c = 0.15π, coordinatewise."""

    c = 0.15 * math.pi

    def value(self, x):
        return np.sum(x * np.cos(self.c * x), axis=-1)

    def grad(self, x):
        return np.cos(self.c * x) - self.c * x * np.sin(self.c * x)

    def hess(self, x):
        c = self.c
        diag = -2 * c * np.sin(c * x) - c * c * x * np.cos(c * x)
        return diag[:, :, None] * np.eye(x.shape[1])

    def d1(self, x):
        return math.cos(self.c * x) - self.c * x * math.sin(self.c * x)

    def d2(self, x):
        c = self.c
        return -2 * c * math.sin(c * x) - c * c * x * math.cos(c * x)


def spd(rng, d, low=0.5, high=5.0):
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return q @ np.diag(rng.uniform(low, high, d)) @ q.T


# ---------------------------------------------------------------------------------------------
# Newton's method
# ---------------------------------------------------------------------------------------------


def ref_newton_1d(x0, steps, lr, fix, damping, f):
    x, out = x0, [x0]
    for _ in range(steps):
        h = f.d2(x)
        if fix == "abs":
            h = abs(h)
        elif fix == "damping":
            h = h + damping
        x = x - lr * f.d1(x) / h
        out.append(x)
    return out


@pytest.mark.parametrize(
    "lr, fix, damping",
    [(1.0, None, 0.0), (0.5, None, 0.0), (1.0, "abs", 0.0), (0.7, "damping", 2.0)],
)
def test_newton_matches_scalar_reference(lr, fix, damping):
    f = XCos()
    starts = [10.0, 3.0, -4.0, 7.5]
    opt = optim.newton(lr, hessian_fix=fix, damping=damping)
    got = drive_oracle(opt, np.array(starts)[:, None], f, 10)[:, :, 0]
    expected = np.array([ref_newton_1d(s, 10, lr, fix, damping, f) for s in starts]).T
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_newton_remedies_on_x_cos_x():
    """Seeds 11.3.3: from x = 10 plain Newton converges to a maximum of x cos(cx); a learning
    rate, absolute curvature or damping each bring it to a minimum instead."""
    f = XCos()
    x0 = np.array([[10.0]])
    end = drive_oracle(optim.newton(), x0, f, 40)[-1, 0, 0]
    assert abs(f.d1(end)) < 1e-8 and f.d2(end) < -1.0
    for opt in (
        optim.newton(0.5),
        optim.newton(hessian_fix="abs"),
        optim.newton(hessian_fix="damping", damping=1.0),
    ):
        trajectory = drive_oracle(opt, x0, f, 60)[:, 0, 0]
        assert abs(f.d1(trajectory[-1])) < 1e-6 and f.d2(trajectory[-1]) > 1.0, repr(opt)
        assert f.value(trajectory[-1:, None])[0] < f.value(x0)[0]


def test_newton_on_a_saddle_jumps_to_it_unless_fixed():
    """On f = ½ xᵀHx with H = R diag(a, b) Rᵀ, a < 0 < b, a Newton step lands on the saddle;
    with |H| the coordinate along the negative eigenvector doubles (downhill) and the other
    is solved; with damping δ each eigen-coordinate z_i is scaled by δ / (λ_i + δ)."""
    a, b, theta, delta = -2.0, 3.0, 0.4, 5.0
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    f = Quadratic(rot @ np.diag([a, b]) @ rot.T, np.zeros(2))
    z = np.array([0.7, -1.3])
    x0 = (rot @ z)[None, :]
    plain = drive_oracle(optim.newton(), x0, f, 1)[-1, 0]
    np.testing.assert_allclose(plain, [0.0, 0.0], atol=1e-12)
    fixed = drive_oracle(optim.newton(hessian_fix="abs"), x0, f, 1)[-1, 0]
    np.testing.assert_allclose(rot.T @ fixed, [2 * z[0], 0.0], atol=1e-12)
    assert f.value(fixed[None])[0] < f.value(x0)[0]
    damped = drive_oracle(optim.newton(hessian_fix="damping", damping=delta), x0, f, 1)[-1, 0]
    np.testing.assert_allclose(
        rot.T @ damped, [z[0] * delta / (a + delta), z[1] * delta / (b + delta)], atol=1e-12
    )


def test_newton_with_weight_decay_solves_the_penalized_quadratic():
    rng = np.random.default_rng(4)
    A, b = spd(rng, 3), rng.normal(size=3)
    lam = 0.7
    end = drive_oracle(optim.newton(weight_decay=lam), rng.normal(size=(2, 3)), Quadratic(A, b), 1)
    expected = np.linalg.solve(A + lam * np.eye(3), b)
    np.testing.assert_allclose(end[-1], np.stack([expected, expected]), rtol=1e-10)


def test_newton_needs_a_hessian():
    opt = optim.newton()
    assert opt.needs == {"grad", "hess"}
    with pytest.raises(ValueError, match="oracle"):
        opt.update(np.ones((1, 2)), np.ones((1, 2)), (), 0)


# ---------------------------------------------------------------------------------------------
# Line search
# ---------------------------------------------------------------------------------------------


def ref_line_search_step(f, x, g, max_lr, rounds):
    """Interval halving on φ(η) = f(x − η g), one trajectory, Python floats."""

    def phi(eta):
        return f([x[i] - eta * g[i] for i in range(len(x))])

    lo, hi = 0.0, max_lr
    mid = (lo + hi) / 2
    f_mid = phi(mid)
    for _ in range(rounds):
        quarter = (hi - lo) / 4
        f_left, f_right = phi(mid - quarter), phi(mid + quarter)
        if f_left < f_mid:
            hi, f_mid = mid, f_left
        elif f_right < f_mid:
            lo, f_mid = mid, f_right
        else:
            lo, hi = mid - quarter, mid + quarter
        mid = (lo + hi) / 2
    eta = mid if f_mid <= phi(0.0) else 0.0
    return [x[i] - eta * g[i] for i in range(len(x))]


# Up to 12 rounds the compared values differ by far more than their rounding errors, so the
# batched search and the scalar one take the same branches.
@given(seed=seeds, rounds=st.integers(1, 12), max_lr=st.floats(0.05, 3.0))
def test_line_search_matches_scalar_reference(seed, rounds, max_lr):
    rng = np.random.default_rng(seed)
    A, b = spd(rng, 3), rng.normal(size=3)
    quad = Quadratic(A, b)

    def f(x):
        return 0.5 * sum(x[i] * A[i, j] * x[j] for i in range(3) for j in range(3)) - sum(
            b[i] * x[i] for i in range(3)
        )

    x0 = rng.normal(size=(4, 3))
    got = drive_oracle(optim.line_search_gd(max_lr, rounds=rounds), x0, quad, 3)
    for row in range(4):
        x = list(x0[row])
        for step in range(3):
            g = [sum(A[i, j] * x[j] for j in range(3)) - b[i] for i in range(3)]
            x = ref_line_search_step(f, x, g, max_lr, rounds)
            np.testing.assert_allclose(got[step + 1, row], x, rtol=1e-10, atol=1e-12)


def test_line_search_finds_the_exact_step_per_trajectory():
    """On a quadratic the exact line minimizer is η* = gᵀg / gᵀAg; each trajectory of the
    batch finds its own. A search by function values resolves a minimizer only to about the
    square root of the machine epsilon (φ is flat there), hence rtol 1e-6."""
    rng = np.random.default_rng(5)
    A, b = spd(rng, 4), rng.normal(size=4)
    quad = Quadratic(A, b)
    x0 = rng.normal(size=(6, 4))
    g = quad.grad(x0)
    exact = np.sum(g * g, axis=1) / np.sum(g * (g @ A), axis=1)
    got = drive_oracle(optim.line_search_gd(4.0, rounds=40), x0, quad, 1)[-1]
    found = np.sum((x0 - got) * g, axis=1) / np.sum(g * g, axis=1)
    np.testing.assert_allclose(found, exact, rtol=1e-6)
    np.testing.assert_allclose(got, x0 - found[:, None] * g, rtol=1e-12)
    assert np.all(exact < 4.0) and np.ptp(exact) > 1e-3


def test_line_search_with_weight_decay_minimizes_the_penalized_line():
    rng = np.random.default_rng(6)
    A, b = spd(rng, 3), rng.normal(size=3)
    lam = np.array([0.0, 1.5])
    x0 = rng.normal(size=(2, 3))
    got = drive_oracle(
        optim.line_search_gd(4.0, rounds=40, weight_decay=lam), x0, Quadratic(A, b), 1
    )
    for row in range(2):
        penalized = A + lam[row] * np.eye(3)
        g = x0[row] @ penalized - b
        eta = g @ g / (g @ penalized @ g)
        np.testing.assert_allclose(got[-1, row], x0[row] - eta * g, rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# L-BFGS
# ---------------------------------------------------------------------------------------------


def ref_lbfgs(x0, grad, steps, lr, m, eps):
    """Two-loop L-BFGS on one trajectory with Python lists."""

    def dot(a, b):
        return sum(a[i] * b[i] for i in range(len(a)))

    x, out, pairs = list(x0), [list(x0)], []
    x_prev = g_prev = None
    for _ in range(steps):
        g = grad(x)
        if x_prev is not None:
            s = [x[i] - x_prev[i] for i in range(len(x))]
            y = [g[i] - g_prev[i] for i in range(len(x))]
            sy = dot(s, y)
            if sy > eps * math.sqrt(dot(s, s) * dot(y, y)) and sy > math.sqrt(
                2.2250738585072014e-308
            ):
                pairs = (pairs + [(s, y, 1 / sy)])[-m:]
        q, alphas = list(g), []
        for s, y, rho in reversed(pairs):
            alpha = rho * dot(s, q)
            q = [q[i] - alpha * y[i] for i in range(len(q))]
            alphas.append(alpha)
        alphas.reverse()
        gamma = dot(pairs[-1][0], pairs[-1][1]) / dot(pairs[-1][1], pairs[-1][1]) if pairs else 1.0
        r = [gamma * qi for qi in q]
        for (s, y, rho), alpha in zip(pairs, alphas, strict=True):
            beta = rho * dot(y, r)
            r = [r[i] + s[i] * (alpha - beta) for i in range(len(r))]
        x_prev, g_prev = x, g
        x = [x[i] - lr * r[i] for i in range(len(x))]
        out.append(list(x))
    return out


class Quartic:
    """f(x) = Σ (x_i⁴/4 − x_i²/2) + ½‖x − c‖²·0.1: nonconvex, so some curvature pairs fail."""

    def __init__(self, c):
        self.c = np.asarray(c, float)

    def grad(self, x):
        return x**3 - x + 0.1 * (x - self.c)

    def grad_list(self, x):
        return [x[i] ** 3 - x[i] + 0.1 * (x[i] - self.c[i]) for i in range(len(x))]


@pytest.mark.parametrize("m", [1, 3])
def test_lbfgs_matches_scalar_reference(m):
    rng = np.random.default_rng(7)
    A, b = spd(rng, 4), rng.normal(size=4)
    quad = Quadratic(A, b)
    x0 = rng.normal(size=(3, 4))
    got = drive_oracle(optim.lbfgs(0.8, history=m), x0, quad, 12)
    for row in range(3):
        expected = ref_lbfgs(
            list(x0[row]), lambda x: list(quad.grad(np.array([x]))[0]), 12, 0.8, m, 1e-8
        )
        np.testing.assert_allclose(got[:, row], np.array(expected), rtol=1e-9, atol=1e-12)


def test_lbfgs_rejects_bad_curvature_like_the_reference():
    f = Quartic([0.3, -0.2])
    x0 = np.array([[0.2, -0.1], [1.5, 0.4], [-0.05, 0.9]])
    got = drive_oracle(optim.lbfgs(0.3, history=2), x0, f, 15)
    rejected = 0
    for row in range(3):
        expected = ref_lbfgs(list(x0[row]), f.grad_list, 15, 0.3, 2, 1e-8)
        np.testing.assert_allclose(got[:, row], np.array(expected), rtol=1e-9, atol=1e-12)
        xs = np.array(expected)
        s, y = (
            np.diff(xs[:-1], axis=0),
            np.diff(np.array([f.grad_list(list(v)) for v in xs[:-1]]), axis=0),
        )
        rejected += int(np.sum(np.sum(s * y, axis=1) <= 0))
    assert rejected > 0  # the test exercises the rejection branch


def test_lbfgs_converges_fast_on_an_ill_conditioned_quadratic():
    rng = np.random.default_rng(8)
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    A, b = q @ np.diag(np.linspace(0.1, 10.0, 5)) @ q.T, rng.normal(size=5)
    quad = Quadratic(A, b)
    star = np.linalg.solve(A, b)
    # Start one unit along the flattest direction, where gradient descent crawls (0.99^40).
    x0 = star + q[:, 0] + 0.1 * rng.normal(size=(2, 5))
    lbfgs = drive_oracle(optim.lbfgs(history=5), x0, quad, 40)[-1]
    gd = drive_oracle(optim.gd(1 / 10.0), x0, quad, 40)[-1]
    assert np.max(np.abs(lbfgs - star)) < 1e-8
    assert np.max(np.abs(gd - star)) > 1e-2


# ---------------------------------------------------------------------------------------------
# Batches, schedules, backends
# ---------------------------------------------------------------------------------------------

B = 4
LRS = np.array([0.05, 0.1, 0.02, 0.2])
BETAS = np.array([0.0, 0.5, 0.9, 0.7])


def _batched_cases():
    rng = np.random.default_rng(9)
    diag = rng.uniform(0.5, 2.0, size=(B, 3))
    return [
        ("gd", lambda h: optim.gd(h["lr"]), {"lr": LRS}),
        ("momentum", lambda h: optim.momentum(h["lr"], h["beta"]), {"lr": LRS, "beta": BETAS}),
        ("nesterov", lambda h: optim.nesterov(h["lr"], h["beta"]), {"lr": LRS, "beta": BETAS}),
        ("delayed_gd", lambda h: optim.delayed_gd(h["lr"], 2), {"lr": LRS}),
        (
            "preconditioned_gd",
            lambda h: optim.preconditioned_gd(h["lr"], h["diag"]),
            {"lr": LRS, "diag": diag},
        ),
        (
            "adagrad",
            lambda h: optim.adagrad(h["lr"], h["eps"]),
            {"lr": LRS, "eps": np.array([1e-6, 1e-3, 1e-2, 1e-8])},
        ),
        (
            "rmsprop",
            lambda h: optim.rmsprop(
                h["lr"], h["gamma"], momentum=h["mu"], centered=True, convention="torch"
            ),
            {"lr": LRS, "gamma": np.array([0.9, 0.99, 0.5, 0.8]), "mu": BETAS},
        ),
        (
            "adadelta",
            lambda h: optim.adadelta(h["rho"], lr=h["lr"]),
            {"rho": np.array([0.9, 0.5, 0.95, 0.7]), "lr": LRS * 10},
        ),
        (
            "adam",
            lambda h: optim.adam(h["lr"], h["beta1"], weight_decay=h["wd"]),
            {"lr": LRS, "beta1": BETAS, "wd": np.array([0.0, 0.1, 0.0, 0.3])},
        ),
        ("yogi", lambda h: optim.yogi(h["lr"], h["beta1"]), {"lr": LRS, "beta1": BETAS}),
        ("amsgrad", lambda h: optim.amsgrad(h["lr"], h["beta1"]), {"lr": LRS, "beta1": BETAS}),
        (
            "newton",
            lambda h: optim.newton(h["lr"], hessian_fix="damping", damping=h["delta"]),
            {"lr": LRS * 5, "delta": np.array([0.1, 1.0, 2.0, 0.0])},
        ),
        ("newton-abs", lambda h: optim.newton(h["lr"], hessian_fix="abs"), {"lr": LRS * 5}),
        (
            "line_search_gd",
            lambda h: optim.line_search_gd(h["top"], rounds=12),
            {"top": np.array([0.5, 1.0, 2.0, 0.1])},
        ),
        ("lbfgs", lambda h: optim.lbfgs(h["lr"], history=2), {"lr": LRS * 5}),
        (
            "schedule",
            lambda h: optim.momentum(h["lr"], 0.5),
            {"lr": schedules.warmup(schedules.factor(0.9, base_lr=LRS), 3)},
        ),
    ]


BATCHED = _batched_cases()


def _single(hyper, row):
    out = {}
    for key, value in hyper.items():
        if isinstance(value, schedules.Schedule):
            out[key] = schedules.warmup(schedules.factor(0.9, base_lr=float(LRS[row])), 3)
        elif np.ndim(value) == 2:
            out[key] = value[row : row + 1]
        else:
            out[key] = float(value[row])
    return out


@pytest.mark.parametrize("name, make, hyper", BATCHED, ids=[c[0] for c in BATCHED])
def test_batch_equals_single_runs(name, make, hyper):
    rng = np.random.default_rng(10)
    quad = Quadratic(spd(rng, 3), rng.normal(size=3))
    x0 = rng.normal(size=(B, 3))
    batch = drive_oracle(make(hyper), x0, quad, 10)
    for row in range(B):
        single = drive_oracle(make(_single(hyper, row)), x0[row : row + 1], quad, 10)
        np.testing.assert_allclose(batch[:, row], single[:, 0], rtol=1e-12, atol=1e-13)


class Ball:
    """The Euclidean ball of radius r about the origin, with a batched projection."""

    def __init__(self, radius, xp=np):
        self.radius, self.xp = radius, xp

    def project(self, x):
        xp = self.xp
        norm = xp.sqrt(xp.sum(x * x, axis=-1, keepdims=True))
        return x * xp.minimum(xp.ones_like(norm), self.radius / xp.maximum(norm, 1e-300 + 0 * norm))


@pytest.mark.parametrize("name, make, hyper", BATCHED, ids=[c[0] for c in BATCHED])
def test_backends_agree_with_numpy(backend, name, make, hyper):
    xp, device = backend
    rng = np.random.default_rng(12)
    A, b = spd(rng, 3), rng.normal(size=3)
    x0 = rng.normal(size=(B, 3))
    expected = drive_oracle(make(hyper), x0, Quadratic(A, b), 6)
    x0_xp = asarray(x0, xp, device=device)
    got = drive_oracle(make(hyper), x0_xp, Quadratic(A, b, xp, device), 6)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    projected = optim.projected(make(hyper), Ball(0.5, xp))
    inside = drive_oracle(projected, x0_xp, Quadratic(A, b, xp, device), 3)
    assert np.all(np.linalg.norm(inside[1:], axis=-1) <= 0.5 + 1e-12)


@given(seed=seeds)
def test_schedule_as_lr_uses_the_step(seed):
    x0, grads = draw(seed, steps=10)
    lr = schedules.cosine(8, 0.3, 0.01, warmup_steps=2)
    got = drive(optim.gd(lr), x0, grads)[:, 0, :]
    x, expected = list(x0[0]), [list(x0[0])]
    for t, g in enumerate(grads):
        x = [x[i] - lr(t) * g[0][i] for i in range(3)]
        expected.append(list(x))
    np.testing.assert_allclose(got, np.array(expected), rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# Weight decay and projections
# ---------------------------------------------------------------------------------------------


def test_weight_decay_argument_equals_wrapper_and_penalized_gradient():
    rng = np.random.default_rng(13)
    quad = Quadratic(spd(rng, 3), rng.normal(size=3))
    x0 = rng.normal(size=(2, 3))
    lam = 0.3
    a = drive_oracle(optim.adam(0.05, weight_decay=lam), x0, quad, 8)
    b = drive_oracle(optim.with_weight_decay(optim.adam(0.05), lam), x0, quad, 8)
    penalized = Quadratic(quad.A_host + lam * np.eye(3), quad.b_host)
    c = drive_oracle(optim.adam(0.05), x0, penalized, 8)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a, c, rtol=1e-12)
    assert optim.adam(0.05, weight_decay=lam).hyperparams["weight_decay"] == lam
    plain = optim.gd(0.1)
    assert optim.with_weight_decay(plain, 0.0) is plain


def test_projected_gd_converges_to_the_projection_of_the_minimizer():
    center = np.array([2.0, -1.0, 0.5])
    quad = Quadratic(np.eye(3), center)
    x0 = np.zeros((2, 3))
    opt = optim.projected(optim.gd(0.5), Ball(1.0))
    assert opt.name == "projected_gd"
    end = drive_oracle(opt, x0, quad, 60)[-1]
    target = center / np.linalg.norm(center)
    np.testing.assert_allclose(end, np.stack([target, target]), atol=1e-10)
    unconstrained = drive_oracle(optim.gd(0.5), x0, quad, 60)[-1]
    np.testing.assert_allclose(unconstrained[0], center, atol=1e-10)


def test_projected_with_the_real_sets_module(backend):
    sets = pytest.importorskip(
        "convexkit.symbolic.sets", reason="convexkit.symbolic.sets is not written yet"
    )
    xp, device = backend
    center = np.array([2.0, -1.0, 0.5])
    quad = Quadratic(np.eye(3), center, xp, device)
    x0 = asarray(np.zeros((2, 3)), xp, device=device)
    ball = drive_oracle(optim.projected(optim.gd(0.5), sets.Ball([0, 0, 0], 1)), x0, quad, 60)
    np.testing.assert_allclose(ball[-1, 0], center / np.linalg.norm(center), atol=1e-10)
    box = drive_oracle(
        optim.projected(optim.gd(0.5), sets.Box([-1, -1, -1], [1, 1, 1])), x0, quad, 60
    )
    np.testing.assert_allclose(box[-1, 1], np.clip(center, -1, 1), atol=1e-10)


def test_projected_needs_a_projection():
    with pytest.raises(TypeError, match="convex_set"):
        optim.projected(optim.gd(0.1), object())


# ---------------------------------------------------------------------------------------------
# The exact iteration maps on SymPy symbols
# ---------------------------------------------------------------------------------------------

x, lam, eta, beta, v, wd = sp.symbols("x lam eta beta v wd")


def test_init_on_a_symbol_gives_symbolic_zeros():
    for opt in (optim.momentum(eta, beta), optim.nesterov(eta, beta), optim.adam(eta)):
        assert all(s == 0 for s in opt.init(x))
    assert optim.delayed_gd(eta, 3).init(x) == (0, 0, 0)
    assert optim.gd(eta).init(x) == ()


def test_symbolic_gd_and_momentum():
    x_next, state = optim.gd(eta).update(x, lam * x, (), 0)
    assert sp.simplify(x_next - (x - eta * lam * x)) == 0 and state == ()
    x_next, (v_next,) = optim.momentum(eta, beta).update(x, lam * x, (v,), 5)
    assert sp.expand(x_next - (x - eta * (beta * v + lam * x))) == 0
    assert sp.expand(v_next - (beta * v + lam * x)) == 0
    # The iteration matrix in (v, x) and its characteristic polynomial (DESIGN.md, section 1).
    matrix = sp.Matrix([v_next, x_next]).jacobian([v, x])
    assert sp.simplify(matrix - sp.Matrix([[beta, lam], [-eta * beta, 1 - eta * lam]])) == sp.zeros(
        2
    )
    z = sp.Symbol("z")
    poly = sp.expand(matrix.charpoly(z).as_expr())
    assert sp.expand(poly - (z**2 - (1 + beta - eta * lam) * z + beta)) == 0


def test_symbolic_nesterov_and_weight_decay():
    x_next, (v_next,) = optim.nesterov(eta, beta).update(x, lam * x, (v,), 0)
    assert sp.expand(x_next - (x - eta * (lam * x + beta * (beta * v + lam * x)))) == 0
    x_next, (v_next,) = optim.momentum(eta, beta, weight_decay=wd).update(x, lam * x, (v,), 0)
    assert sp.expand(x_next - (x - eta * (beta * v + (lam + wd) * x))) == 0


def test_symbolic_delayed_gd_gives_the_companion_map():
    g1, g2, z = sp.symbols("g1 g2 z")
    x_next, state = optim.delayed_gd(eta, 2).update(x, lam * x, (g1, g2), 7)
    assert sp.expand(x_next - (x - eta * g2)) == 0 and state == (lam * x, g1)
    matrix = sp.Matrix([x_next, *state]).jacobian([x, g1, g2])
    poly = sp.expand(matrix.charpoly(z).as_expr())
    assert sp.expand(poly - (z**3 - z**2 + eta * lam)) == 0


def test_nesterov_equals_the_look_ahead_form():
    """x = y + βu, v = −u/η maps our iterates onto u ← βu − η∇f(y + βu), y ← y + u."""
    rng = np.random.default_rng(14)
    quad = Quadratic(spd(rng, 3), rng.normal(size=3))
    lr, mom = 0.1, 0.8
    x0 = rng.normal(size=(1, 3))
    ours = drive_oracle(optim.nesterov(lr, mom), x0, quad, 15)
    y, u = x0.copy(), np.zeros_like(x0)
    for step in range(15):
        u = mom * u - lr * quad.grad(y + mom * u)
        y = y + u
        np.testing.assert_allclose(ours[step + 1], y + mom * u, rtol=1e-11, atol=1e-13)


def test_symbolic_newton_on_the_scalar_model():
    h = sp.Symbol("h")

    class Scalar:
        def hess(self, point):
            return h

    step, _ = optim.newton(eta, hessian_fix="damping", damping=wd).update(
        x, lam * x, (), 0, Scalar()
    )
    assert sp.simplify(step - (x - eta * lam * x / (h + wd))) == 0


# ---------------------------------------------------------------------------------------------
# Argument checks and reprs
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: optim.gd(-0.1), r"lr=-0\.1 .*\[0\.0, inf\)"),
        (lambda: optim.momentum(0.1, 1.5), r"beta=1\.5"),
        (lambda: optim.momentum(0.1, np.array([0.5, 2.0])), r"beta=.*2\.0"),
        (lambda: optim.delayed_gd(0.1, -1), r"tau=-1"),
        (lambda: optim.delayed_gd(0.1, 1.5), r"tau=1\.5"),
        (lambda: optim.adam(0.1, beta2=1.0), r"beta2=1\.0 .*\[0\.0, 1\.0\)"),
        (lambda: optim.adam(0.1, convention="keras"), r"convention='keras'.*'d2l', 'torch'"),
        (lambda: optim.adadelta(eps=0.0), r"eps=0\.0"),
        (lambda: optim.newton(hessian_fix="clip"), r"hessian_fix='clip'"),
        (lambda: optim.lbfgs(history=0), r"history=0"),
        (lambda: optim.line_search_gd(0.0), r"max_lr=0\.0"),
        (lambda: optim.preconditioned_gd(0.1, np.array([1.0, -1.0])), r"diag=.*-1\.0"),
        (lambda: optim.gd(0.1, weight_decay=-1.0), r"weight_decay=-1\.0"),
        (lambda: optim.momentum(schedules.constant(0.1), beta=schedules.constant(0.5)), r"beta="),
    ],
)
def test_bad_hyperparameters_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_reprs_show_hyperparameters():
    assert repr(optim.momentum(0.1, 0.5)) == "optim.momentum(lr=0.1, beta=0.5)"
    assert repr(optim.adam(0.01, convention="torch")) == (
        "optim.adam(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-08, convention='torch')"
    )
    shown = repr(optim.sgd(schedules.square_root(0.1), weight_decay=0.01))
    assert shown == "optim.sgd(lr=schedules.square_root(base_lr=0.1), weight_decay=0.01)"
