"""Data sets: the airfoil self-noise data, handwritten digits, Fashion-MNIST, and synthetic
problems whose optimum is known.

Everything here works offline. The airfoil and digits files ship inside the package (with their
citations in ``convexkit/data/README.md``) and are checked against their sha256 on every load.
Fashion-MNIST is read from the standard IDX files in a folder; ``download=True`` fetches them,
checked against their published sha256, when a network is there.

Arrays come back as NumPy float64 unless ``xp``/``dtype``/``device`` ask for another namespace;
class labels are int64.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import os
import struct
import tempfile
import urllib.error
import urllib.request
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..backend import asarray, resolve_dtype, resolve_namespace
from ..errors import check_int, check_real, invalid

__all__ = [
    "FASHION_MNIST_CLASSES",
    "SyntheticData",
    "airfoil",
    "digits",
    "fashion_mnist",
    "linear_regression_data",
    "logistic_regression_data",
    "read_idx",
]

AIRFOIL_SHA256 = "74c75fd71783f1e6b71f8a622b993dc592897a97cd689c5090a07147a1b097b3"
DIGITS_SHA256 = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

# The four files and the sha256 of their published .gz form.
FASHION_MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc",  # noqa: E501
    "train-labels-idx1-ubyte.gz": "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc",  # noqa: E501
    "t10k-images-idx3-ubyte.gz": "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229",
    "t10k-labels-idx1-ubyte.gz": "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf",
}
FASHION_MNIST_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)


# --------------------------------------------------------------------------------------------
# helpers


def _package_bytes(name: str, sha256: str) -> bytes:
    """The bytes of a file shipped in this package, after checking its sha256."""
    data = resources.files(__name__).joinpath(name).read_bytes()
    _check_sha256(data, sha256, name)
    return data


def _check_sha256(data: bytes, expected: str, what: str) -> None:
    found = hashlib.sha256(data).hexdigest()
    if found != expected:
        raise ValueError(
            f"{what} is corrupt or was replaced: its sha256 is {found}, expected {expected}"
        )


def _deliver(arrays: tuple[np.ndarray, ...], xp: Any, dtype: Any, device: Any) -> tuple:
    """Move host arrays to ``xp`` (float arrays get ``dtype``; integer arrays stay int64)."""
    namespace = resolve_namespace(xp)
    float_dtype = resolve_dtype(dtype, namespace)
    out = []
    for array in arrays:
        if np.issubdtype(array.dtype, np.integer):
            target = namespace.int64 if namespace is not np else np.int64
        else:
            target = float_dtype
        fresh = np.array(array, copy=True, order="C")  # never a view of a cached table
        out.append(asarray(fresh, namespace, dtype=target, device=device))
    return tuple(out)


# --------------------------------------------------------------------------------------------
# airfoil


def airfoil(
    *, n: int = 1500, xp: Any = None, dtype: Any = None, device: Any = None
) -> tuple[Any, Any]:
    """The NASA airfoil self-noise data, standardised as in the book's chapter 11.

    Every one of the six columns is standardised by its mean and population standard deviation
    over all 1503 rows; the first ``n`` rows are returned, the five inputs apart from the
    target (scaled sound pressure level).

    Parameters
    ----------
    n : int
        Number of rows returned, 1 to 1503 (the book uses 1500).
    xp, dtype, device : optional
        Array namespace (NumPy by default), floating dtype (float64 by default) and device.

    Returns
    -------
    X : array of shape (n, 5)
    y : array of shape (n,)

    Raises
    ------
    ValueError
        If the packaged file does not have the expected sha256.
    """
    check_int("n", n, minimum=1)
    if n > 1503:
        raise invalid("n", n, "an integer from 1 to 1503 (the data set has 1503 rows)")
    table = _airfoil_table(AIRFOIL_SHA256)
    return _deliver((table[:n, :-1], table[:n, -1]), xp, dtype, device)


@functools.lru_cache(maxsize=2)
def _airfoil_table(sha256: str) -> np.ndarray:
    """The standardised airfoil table (1503, 6), read once per process (read-only)."""
    text = _package_bytes("airfoil_self_noise.dat", sha256).decode("ascii")
    table = np.array(
        [[float(v) for v in line.split("\t")] for line in text.splitlines() if line.strip()]
    )
    table = (table - table.mean(axis=0)) / table.std(axis=0)
    table.flags.writeable = False
    return table


# --------------------------------------------------------------------------------------------
# digits


def digits(
    *,
    n_classes: int = 10,
    scale: bool = True,
    xp: Any = None,
    dtype: Any = None,
    device: Any = None,
) -> tuple[Any, Any]:
    """Handwritten digits: 1797 images of 8 x 8 pixels with labels 0 to 9.

    The test set of the UCI "Optical Recognition of Handwritten Digits" data (Alpaydin and
    Kaynak, 1998), as scikit-learn distributes it; shipped inside convexkit, so it works offline.
    Each pixel counts the ink in a 4 x 4 block of a 32 x 32 bitmap (0 to 16).

    Parameters
    ----------
    n_classes : int
        Keep the examples of digits 0 .. n_classes-1 (2 gives a binary problem of 0 against 1).
    scale : bool
        Divide the pixels by 16, so that they lie in [0, 1].
    xp, dtype, device : optional
        Array namespace, floating dtype of X (float64 by default) and device.

    Returns
    -------
    X : array of shape (m, 64)
        One row per image, the 8 x 8 pixels in row-major order.
    y : int64 array of shape (m,)
    """
    check_int("n_classes", n_classes, minimum=2)
    if n_classes > 10:
        raise invalid("n_classes", n_classes, "an integer from 2 to 10")
    table = _digits_table(DIGITS_SHA256)
    X, y = table[:, :-1].astype(float), table[:, -1]
    keep = y < n_classes
    X, y = X[keep], y[keep]
    if scale:
        X = X / 16.0
    return _deliver((X, y), xp, dtype, device)


@functools.lru_cache(maxsize=2)
def _digits_table(sha256: str) -> np.ndarray:
    """The digits table (1797, 65) of int64, read once per process (read-only)."""
    raw = gzip.decompress(_package_bytes("digits.csv.gz", sha256)).decode("ascii")
    table = np.loadtxt(io.StringIO(raw), delimiter=",", dtype=np.int64)
    table.flags.writeable = False
    return table


# --------------------------------------------------------------------------------------------
# IDX files and Fashion-MNIST

_IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (the format of MNIST and Fashion-MNIST), gzip-compressed or raw.

    The header is two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dimensions, and each dimension as a big-endian
    uint32; the data follow in big-endian order. Compression is recognised from the content,
    not the file name.

    Parameters
    ----------
    path : path-like
        The file.

    Returns
    -------
    numpy.ndarray
        The array, in native byte order.

    Raises
    ------
    ValueError
        For a file that is not IDX or whose size does not match its header.
    """
    target = Path(path)
    data = target.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as err:
            raise ValueError(f"read_idx: {target} is a damaged gzip file ({err})") from err
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(
            f"read_idx: {target} is not an IDX file (its first bytes are {data[:4]!r}; an IDX "
            "file starts with two zero bytes, a type code and the number of dimensions)"
        )
    code, ndim = data[2], data[3]
    if code not in _IDX_TYPES:
        raise ValueError(
            f"read_idx: {target} has the unknown IDX type code {code:#04x}; expected one of "
            + ", ".join(f"{c:#04x}" for c in _IDX_TYPES)
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"read_idx: {target} ends inside its header ({len(data)} bytes)")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _IDX_TYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(
            f"read_idx: {target} has {len(data) - header} bytes of data, but its header "
            f"(shape {shape}, {dtype.name}) needs {expected}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def _is_float32(dtype: Any) -> bool:
    """Whether ``dtype`` (a name, a NumPy type or another namespace's dtype) is float32."""
    if dtype is None:
        return False
    try:
        return np.dtype(dtype) == np.float32
    except TypeError:
        return str(getattr(dtype, "name", dtype)).rsplit(".", 1)[-1] == "float32"


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def _download(name: str, folder: Path, timeout: float) -> Path:
    """Fetch one Fashion-MNIST file into ``folder``, checked against its sha256."""
    expected = FASHION_MNIST_FILES[name]
    failures = []
    for base in FASHION_MNIST_MIRRORS:
        url = base + name
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
                data = response.read()
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            failures.append(f"{url}: {getattr(err, 'reason', err)}")
            continue
        found = hashlib.sha256(data).hexdigest()
        if found != expected:
            failures.append(f"{url}: sha256 {found} differs from the published {expected}")
            continue
        folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(data)
            os.replace(temporary, folder / name)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return folder / name
    checksum_failed = any("sha256" in f for f in failures)
    message = (
        f"fashion_mnist(download=True) could not fetch {name}:\n  "
        + "\n  ".join(failures)
        + f"\nWithout a network, copy the four IDX files ({', '.join(FASHION_MNIST_FILES)}, "
        f"gzip-compressed or not) into {folder} and call fashion_mnist({str(folder)!r})."
    )
    raise ValueError(message) if checksum_failed else ConnectionError(message)


def fashion_mnist(
    folder: str | os.PathLike,
    *,
    split: str = "train",
    download: bool = False,
    flatten: bool = True,
    timeout: float = 30.0,
    xp: Any = None,
    dtype: Any = None,
    device: Any = None,
) -> tuple[Any, Any]:
    """Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017) from the standard IDX files in a folder.

    Looks in ``folder`` for ``train-images-idx3-ubyte(.gz)`` and ``train-labels-idx1-ubyte(.gz)``
    (or the ``t10k-`` pair for ``split="test"``). With ``download=True``, missing files are
    fetched from the published mirrors and checked against their sha256 first.

    Parameters
    ----------
    folder : path-like
        Where the IDX files are (or go).
    split : {"train", "test"}
        60000 training or 10000 test images.
    download : bool
        Fetch missing files. Nothing is fetched when the files are already there.
    flatten : bool
        Images as rows of 784 pixels (True) or as arrays of shape (28, 28).
    timeout : float
        Seconds to wait for a server before trying the next mirror.
    xp, dtype, device : optional
        Array namespace, floating dtype of X (float64 by default) and device.

    Returns
    -------
    X : array of shape (m, 784) or (m, 28, 28)
        Pixels divided by 255, in [0, 1].
    y : int64 array of shape (m,)
        Class labels 0 to 9; their names are ``FASHION_MNIST_CLASSES``.

    Raises
    ------
    FileNotFoundError
        When files are missing and ``download`` is False.
    ConnectionError
        When ``download`` is True and no mirror can be reached (for example offline).
    ValueError
        When a download does not match its checksum, or a file is not valid IDX.
    """
    if split not in ("train", "test"):
        raise invalid("split", split, "'train' or 'test'")
    check_real("timeout", timeout, low=0, low_open=True)
    root = Path(folder)
    prefix = "train" if split == "train" else "t10k"
    names = (f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz")
    paths = []
    for name in names:
        found = _find(root, name)
        if found is None:
            if not download:
                raise FileNotFoundError(
                    f"fashion_mnist: {name} (or {name.removesuffix('.gz')}) is not in {root}; "
                    "pass download=True to fetch it, or copy the IDX files there"
                )
            found = _download(name, root, timeout)
        paths.append(found)
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"fashion_mnist: {paths[0]} has shape {images.shape} and {paths[1]} has shape "
            f"{labels.shape}; expected (m, rows, cols) images and (m,) labels"
        )
    X = images.astype(np.float32 if _is_float32(dtype) else np.float64) / 255.0
    if flatten:
        X = X.reshape(X.shape[0], -1)
    return _deliver((X, labels.astype(np.int64)), xp, dtype, device)


# --------------------------------------------------------------------------------------------
# synthetic problems with known optima


class SyntheticData(NamedTuple):
    """A synthetic problem and its exact optimum.

    Attributes
    ----------
    X : numpy.ndarray, shape (n, d)
    y : numpy.ndarray, shape (n,)
        Targets (regression) or int64 class labels.
    optimum : numpy.ndarray, shape (P,)
        A minimiser of the training objective, as one flat parameter vector in the layout of
        the matching model of :mod:`convexkit.models` (weights, then biases).
    optimal_loss : float
        The objective at ``optimum``: the loss the model reports, L2 penalty included.
    true_params : numpy.ndarray, shape (P,)
        The parameters the data were drawn from (same layout).
    """

    X: np.ndarray
    y: np.ndarray
    optimum: np.ndarray
    optimal_loss: float
    true_params: np.ndarray


def _features(rng: np.random.Generator, n: int, d: int, feature_scales: Any) -> np.ndarray:
    X = rng.standard_normal((n, d))
    if feature_scales is not None:
        scales = np.asarray(feature_scales, dtype=float)
        if scales.shape != (d,) or not np.all(np.isfinite(scales)) or np.any(scales <= 0):
            raise invalid("feature_scales", feature_scales, f"{d} positive finite numbers")
        X = X * scales
    return X


def linear_regression_data(
    n: int = 1000,
    n_features: int = 5,
    *,
    noise: float = 0.1,
    l2: float = 0.0,
    feature_scales: Any = None,
    seed: int = 0,
) -> SyntheticData:
    """Linear regression data ``y = X w + b + noise * e`` and the exact least-squares optimum.

    Inputs are standard normal (times ``feature_scales``), ``w`` and ``b`` standard normal. The
    optimum minimises ``mean((X w + b - y)^2) / 2 + l2 * |w|^2 / 2`` (the objective of
    ``models.linear_regression(n_features, l2=l2)``) and is found by solving the normal
    equations in float64, so it is exact up to rounding.

    Parameters
    ----------
    n, n_features : int
        Number of examples and of features.
    noise : float
        Standard deviation of the Gaussian noise on the targets.
    l2 : float
        L2 regularisation of the weights (not the bias) in the objective.
    feature_scales : array of shape (n_features,), optional
        Column scales, to make the problem ill-conditioned.
    seed : int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    SyntheticData
        Parameters in the layout ``[w (n_features), b]``.
    """
    check_int("n", n, minimum=1)
    check_int("n_features", n_features, minimum=1)
    check_real("noise", noise, low=0)
    check_real("l2", l2, low=0)
    rng = np.random.default_rng(seed)
    X = _features(rng, n, n_features, feature_scales)
    true = rng.standard_normal(n_features + 1)
    y = X @ true[:-1] + true[-1] + noise * rng.standard_normal(n)
    design = np.hstack([X, np.ones((n, 1))])
    gram = design.T @ design / n
    gram[:n_features, :n_features] += l2 * np.eye(n_features)
    optimum = np.linalg.lstsq(gram, design.T @ y / n, rcond=None)[0]
    residual = design @ optimum - y
    loss = 0.5 * np.mean(residual**2) + 0.5 * l2 * np.sum(optimum[:-1] ** 2)
    return SyntheticData(X, y, optimum, float(loss), true)


def _softmax_objective(
    theta: np.ndarray, design: np.ndarray, onehot: np.ndarray, l2: float, n_features: int
) -> tuple[float, np.ndarray, np.ndarray]:
    """Value, gradient and Hessian of the mean softmax cross-entropy in ``theta``.

    ``theta`` is the row-major flattening of the (d+1, K) matrix whose first d rows are the
    weights and whose last row is the bias.
    """
    n, k = onehot.shape
    Theta = theta.reshape(-1, k)
    z = design @ Theta
    z = z - z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    p = np.exp(z - log_norm[:, None])
    weights = Theta[:n_features]
    value = np.mean(log_norm - (z * onehot).sum(axis=1)) + 0.5 * l2 * np.sum(weights**2)
    grad = (design.T @ (p - onehot) / n).ravel()
    curvature = p[:, :, None] * (np.eye(k)[None] - p[:, None, :])  # diag(p) - p p^T
    hess = np.einsum("ia,ic,ikl->akcl", design, design, curvature) / n
    hess = hess.reshape(theta.size, theta.size)
    penalty = np.zeros(theta.size)
    penalty[: n_features * k] = l2
    grad = grad + penalty * theta
    hess = hess + np.diag(penalty)
    return float(value), grad, hess


def _binary_objective(
    theta: np.ndarray, design: np.ndarray, y: np.ndarray, l2: float, n_features: int
) -> tuple[float, np.ndarray, np.ndarray]:
    """Value, gradient and Hessian of the mean binary cross-entropy in ``theta = [w, b]``."""
    n = y.shape[0]
    z = design @ theta
    softplus = np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))
    sigma = np.where(
        z >= 0, 1 / (1 + np.exp(-np.abs(z))), np.exp(-np.abs(z)) / (1 + np.exp(-np.abs(z)))
    )
    penalty = np.zeros(theta.size)
    penalty[:n_features] = l2
    value = np.mean(softplus - y * z) + 0.5 * np.sum(penalty * theta**2)
    grad = design.T @ (sigma - y) / n + penalty * theta
    hess = (design * (sigma * (1 - sigma))[:, None]).T @ design / n + np.diag(penalty)
    return float(value), grad, hess


def _newton(objective: Any, theta: np.ndarray, *, max_iter: int = 100) -> np.ndarray:
    """Damped Newton's method with a backtracking (Armijo) line search.

    Stops when the gradient norm is below 1e-12, or when no step decreases the objective any
    more (rounding), and then requires a gradient norm below 1e-10. The Newton system is solved
    in the least-squares sense, so the step is the minimum-norm one where the Hessian is
    singular (the softmax model's invariance to shifting every class by the same amount).
    """
    value, grad, hess = objective(theta)
    for _ in range(max_iter):
        if np.linalg.norm(grad) <= 1e-12:
            break
        step = np.linalg.lstsq(hess, -grad, rcond=None)[0]
        slope = float(grad @ step)
        t = 1.0
        new_value, new_grad, new_hess = objective(theta + step)
        while new_value > value + 1e-4 * t * slope and t > 1e-10:
            t *= 0.5
            new_value, new_grad, new_hess = objective(theta + t * step)
        if new_value > value:
            break
        theta = theta + t * step
        value, grad, hess = new_value, new_grad, new_hess
    if np.linalg.norm(grad) <= 1e-10:
        return theta
    raise ValueError(
        "logistic_regression_data: Newton's method did not reach the optimum (gradient norm "
        f"{np.linalg.norm(grad):.3g}); the classes are probably separable, so no finite "
        "optimum exists: pass l2 > 0, more examples n, or a smaller scale"
    )


def _check_attained(value: float, l2: float) -> None:
    """Separable classes have no minimiser without L2: the loss only tends to 0 as the weights
    grow, and Newton's method stops at a tiny loss and gradient far out."""
    if l2 == 0 and value < 1e-6:
        raise ValueError(
            f"logistic_regression_data: the loss went down to {value:.3g}, so the classes are "
            "separable and no finite optimum exists: pass l2 > 0, more examples n, or a smaller "
            "scale"
        )


def logistic_regression_data(
    n: int = 1000,
    n_features: int = 5,
    n_classes: int = 2,
    *,
    scale: float = 1.0,
    l2: float = 0.0,
    feature_scales: Any = None,
    seed: int = 0,
) -> SyntheticData:
    """Well-specified logistic (or softmax) regression data and the exact optimum.

    Inputs are standard normal (times ``feature_scales``); true weights are normal with
    standard deviation ``scale / sqrt(n_features)`` and true biases normal with standard
    deviation ``scale``; each label is drawn from the class probabilities of the true model. The
    returned optimum minimises the mean cross-entropy plus ``l2 * |W|^2 / 2`` (the objective of
    ``models.logistic_regression(n_features, n_classes, l2=l2)``), found by Newton's method in
    float64 to a gradient norm below 1e-10. For more than two classes the objective does not change
    when the same vector is added to every class; the optimum returned is the one whose
    weights and biases sum to zero over the classes.

    Parameters
    ----------
    n, n_features, n_classes : int
        Number of examples, of features and of classes (2 gives binary logistic regression).
    scale : float
        Size of the true parameters: larger means cleaner labels.
    l2 : float
        L2 regularisation of the weights (not the biases) in the objective.
    feature_scales : array of shape (n_features,), optional
        Column scales.
    seed : int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    SyntheticData
        Binary: parameters ``[w (n_features), b]``; softmax: ``[W (n_features x n_classes,
        row-major), b (n_classes)]``. Labels are int64 in 0 .. n_classes-1.

    Raises
    ------
    ValueError
        When no finite optimum exists (separable classes with ``l2=0``).
    """
    check_int("n", n, minimum=1)
    check_int("n_features", n_features, minimum=1)
    check_int("n_classes", n_classes, minimum=2)
    check_real("scale", scale, low=0)
    check_real("l2", l2, low=0)
    rng = np.random.default_rng(seed)
    X = _features(rng, n, n_features, feature_scales)
    design = np.hstack([X, np.ones((n, 1))])
    if n_classes == 2:
        true = np.concatenate(
            [
                rng.standard_normal(n_features) * scale / np.sqrt(n_features),
                rng.standard_normal(1) * scale,
            ]
        )
        probability = 1 / (1 + np.exp(-(design @ true)))
        y = (rng.random(n) < probability).astype(np.int64)
        yf = y.astype(float)
        optimum = _newton(
            lambda t: _binary_objective(t, design, yf, l2, n_features), np.zeros(n_features + 1)
        )
        value = _binary_objective(optimum, design, yf, l2, n_features)[0]
        _check_attained(value, l2)
        return SyntheticData(X, y, optimum, value, true)
    true_matrix = np.vstack(
        [
            rng.standard_normal((n_features, n_classes)) * scale / np.sqrt(n_features),
            rng.standard_normal((1, n_classes)) * scale,
        ]
    )
    logits = design @ true_matrix
    logits -= logits.max(axis=1, keepdims=True)
    probability = np.exp(logits)
    probability /= probability.sum(axis=1, keepdims=True)
    draws = rng.random((n, 1))
    y = np.minimum((draws > np.cumsum(probability, axis=1)).sum(axis=1), n_classes - 1)
    y = y.astype(np.int64)
    onehot = np.eye(n_classes)[y]
    objective = lambda t: _softmax_objective(t, design, onehot, l2, n_features)  # noqa: E731
    theta = _newton(objective, np.zeros((n_features + 1) * n_classes))
    centred = theta.reshape(-1, n_classes)
    centred = centred - centred.mean(axis=1, keepdims=True)
    optimum = centred.ravel()
    value = objective(optimum)[0]
    _check_attained(value, l2)
    return SyntheticData(X, y, optimum, value, true_matrix.ravel())
