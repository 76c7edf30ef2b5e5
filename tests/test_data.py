"""Data sets: the packaged airfoil and digits files, the IDX reader and Fashion-MNIST (on tiny
files written here, never the network), and the synthetic problems with known optima."""

from __future__ import annotations

import gzip
import hashlib
import io
import struct
import urllib.error
from importlib import resources

import numpy as np
import pytest

import convexkit as ck
from convexkit import data


def _raw_airfoil() -> np.ndarray:
    text = resources.files("convexkit.data").joinpath("airfoil_self_noise.dat").read_text()
    return np.loadtxt(io.StringIO(text), delimiter="\t")


def test_airfoil_is_standardised_over_all_rows_as_the_book_does() -> None:
    X, y = ck.data.airfoil()
    raw = _raw_airfoil()
    assert raw.shape == (1503, 6)
    assert X.shape == (1500, 5) and y.shape == (1500,) and X.dtype == np.float64
    standardised = (raw - raw.mean(axis=0)) / raw.std(axis=0)  # population std, all 1503 rows
    np.testing.assert_allclose(X, standardised[:1500, :5], rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(y, standardised[:1500, 5], rtol=1e-13, atol=1e-13)
    # the 1500 rows are not exactly centred: the statistics come from all 1503
    assert np.all(np.abs(X.mean(axis=0)) > 1e-5)


def test_airfoil_options_and_returned_copies() -> None:
    X, y = ck.data.airfoil(n=1503, dtype="float32")
    assert X.shape == (1503, 5) and X.dtype == np.float32
    X[0, 0] = 1e6
    assert ck.data.airfoil()[0][0, 0] != 1e6
    with pytest.raises(ValueError, match="n=1504"):
        ck.data.airfoil(n=1504)


def test_airfoil_on_array_api_strict_device() -> None:
    strict = pytest.importorskip("array_api_strict")
    device = strict.Device("device1")
    X, y = ck.data.airfoil(xp=strict, device=device)
    assert X.device == device and y.shape == (1500,)


def test_packaged_files_are_checked_against_their_sha256(monkeypatch: pytest.MonkeyPatch) -> None:
    data._airfoil_table.cache_clear()
    data._digits_table.cache_clear()
    monkeypatch.setattr(data, "AIRFOIL_SHA256", "0" * 64)
    monkeypatch.setattr(data, "DIGITS_SHA256", "1" * 64)
    with pytest.raises(ValueError, match="sha256"):
        ck.data.airfoil()
    with pytest.raises(ValueError, match="sha256"):
        ck.data.digits()


def test_digits_are_the_uci_test_set() -> None:
    X, y = ck.data.digits()
    assert X.shape == (1797, 64) and y.dtype == np.int64
    counts = np.bincount(y)
    assert counts.tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert X.min() == 0.0 and X.max() == 1.0
    np.testing.assert_array_equal(X * 16, np.round(X * 16))  # counts of ink, 0 .. 16
    X2, y2 = ck.data.digits(n_classes=2, scale=False)
    assert set(np.unique(y2)) == {0, 1} and X2.shape == (360, 64) and X2.max() == 16
    with pytest.raises(ValueError, match="n_classes=11"):
        ck.data.digits(n_classes=11)


# ---- IDX and Fashion-MNIST


def _idx_bytes(array: np.ndarray, code: int) -> bytes:
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    big_endian = array.astype(array.dtype.newbyteorder(">"))
    return header + big_endian.tobytes()


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize(
    ("dtype", "code"),
    [
        (np.uint8, 0x08),
        (np.int8, 0x09),
        (np.int16, 0x0B),
        (np.int32, 0x0C),
        (np.float32, 0x0D),
        (np.float64, 0x0E),
    ],
)
def test_read_idx_every_type(tmp_path, dtype, code, compress) -> None:
    rng = np.random.default_rng(1)
    array = (rng.standard_normal((3, 4, 2)) * 50).astype(dtype)
    payload = _idx_bytes(array, code)
    path = tmp_path / "x.idx"
    path.write_bytes(gzip.compress(payload) if compress else payload)
    read = ck.data.read_idx(path)
    assert read.dtype == np.dtype(dtype) and read.shape == (3, 4, 2)
    np.testing.assert_array_equal(read, array)


def test_read_idx_refuses_what_is_not_idx(tmp_path) -> None:
    good = _idx_bytes(np.arange(6, dtype=np.uint8).reshape(2, 3), 0x08)
    cases = {
        "magic": (b"\x01\x02" + good[2:], "not an IDX file"),
        "type": (good[:2] + b"\x07" + good[3:], "unknown IDX type code"),
        "short": (good[:-1], "needs 6"),
        "header": (good[:6], "ends inside its header"),
    }
    for name, (payload, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(payload)
        with pytest.raises(ValueError, match=message):
            ck.data.read_idx(path)


def _write_fashion(folder, prefix: str, images: np.ndarray, labels: np.ndarray, gz: bool) -> None:
    for kind, array, code in (("images-idx3", images, 0x08), ("labels-idx1", labels, 0x08)):
        payload = _idx_bytes(array, code)
        name = f"{prefix}-{kind}-ubyte" + (".gz" if gz else "")
        (folder / name).write_bytes(gzip.compress(payload) if gz else payload)


def test_fashion_mnist_reads_idx_files_from_a_folder(tmp_path) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = np.array([0, 9, 3, 3, 1], dtype=np.uint8)
    _write_fashion(tmp_path, "train", images, labels, gz=True)
    _write_fashion(tmp_path, "t10k", images[:2], labels[:2], gz=False)
    X, y = ck.data.fashion_mnist(tmp_path)
    assert X.shape == (5, 784) and y.tolist() == [0, 9, 3, 3, 1] and y.dtype == np.int64
    np.testing.assert_allclose(X, images.reshape(5, -1) / 255.0)
    X_test, y_test = ck.data.fashion_mnist(tmp_path, split="test", flatten=False, dtype="float32")
    assert X_test.shape == (2, 28, 28) and X_test.dtype == np.float32
    with pytest.raises(ValueError, match="split='valid'"):
        ck.data.fashion_mnist(tmp_path, split="valid")


def test_fashion_mnist_missing_files_say_how_to_get_them(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="download=True"):
        ck.data.fashion_mnist(tmp_path)


def _offline(*args, **kwargs):
    raise urllib.error.URLError("network is unreachable")


def test_fashion_mnist_download_offline_is_a_clear_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(data.urllib.request, "urlopen", _offline)
    with pytest.raises(ConnectionError) as info:
        ck.data.fashion_mnist(tmp_path / "fm", download=True)
    message = str(info.value)
    assert "network is unreachable" in message and str(tmp_path / "fm") in message
    assert not (tmp_path / "fm").exists() or not any((tmp_path / "fm").iterdir())


class _Response(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_fashion_mnist_download_checks_the_checksum(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(data.urllib.request, "urlopen", lambda url, timeout: _Response(b"junk"))
    with pytest.raises(ValueError, match="sha256"):
        ck.data.fashion_mnist(tmp_path, download=True)
    assert not any(tmp_path.iterdir())  # nothing unverified was written


def test_fashion_mnist_download_writes_verified_files(tmp_path, monkeypatch) -> None:
    images = np.full((2, 28, 28), 255, dtype=np.uint8)
    labels = np.array([7, 8], dtype=np.uint8)
    payloads = {
        "train-images-idx3-ubyte.gz": gzip.compress(_idx_bytes(images, 0x08)),
        "train-labels-idx1-ubyte.gz": gzip.compress(_idx_bytes(labels, 0x08)),
    }
    digests = {name: hashlib.sha256(body).hexdigest() for name, body in payloads.items()}
    monkeypatch.setattr(data, "FASHION_MNIST_FILES", {**data.FASHION_MNIST_FILES, **digests})
    fetched = []

    def serve(url, timeout):
        fetched.append(url)
        return _Response(payloads[url.rsplit("/", 1)[1]])

    monkeypatch.setattr(data.urllib.request, "urlopen", serve)
    X, y = ck.data.fashion_mnist(tmp_path, download=True)
    assert y.tolist() == [7, 8] and np.all(X == 1.0) and len(fetched) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(payloads)
    ck.data.fashion_mnist(tmp_path, download=True)  # already there: nothing fetched
    assert len(fetched) == 2


# ---- synthetic problems


@pytest.mark.parametrize("l2", [0.0, 0.5])
def test_linear_regression_data_optimum_is_exact(l2: float) -> None:
    problem = ck.data.linear_regression_data(200, 4, l2=l2, feature_scales=[1, 10, 0.1, 1], seed=3)
    model = ck.models.linear_regression(4, l2=l2)
    theta = problem.optimum[None]
    loss, grad = model.loss_and_grad(theta, problem.X, problem.y)
    assert abs(loss[0] - problem.optimal_loss) < 1e-12
    assert np.max(np.abs(grad)) < 1e-10
    rng = np.random.default_rng(0)
    nearby = theta + 1e-3 * rng.standard_normal((50, 5))
    assert np.all(model.loss(nearby, problem.X, problem.y) > problem.optimal_loss)


@pytest.mark.parametrize(("classes", "l2"), [(2, 0.0), (2, 0.1), (3, 0.0), (4, 0.05)])
def test_logistic_regression_data_optimum_is_exact(classes: int, l2: float) -> None:
    problem = ck.data.logistic_regression_data(300, 3, classes, l2=l2, seed=1)
    model = ck.models.logistic_regression(3, classes, l2=l2)
    loss, grad = model.loss_and_grad(problem.optimum[None], problem.X, problem.y)
    assert abs(loss[0] - problem.optimal_loss) < 1e-12
    assert np.max(np.abs(grad)) < 1e-9  # the model's own gradient vanishes there
    rng = np.random.default_rng(1)
    nearby = problem.optimum + 1e-2 * rng.standard_normal((50, model.n_params))
    assert np.all(model.loss(nearby, problem.X, problem.y) >= problem.optimal_loss)
    assert set(np.unique(problem.y)) == set(range(classes))


def test_separable_logistic_data_has_no_optimum() -> None:
    with pytest.raises(ValueError, match="separable"):
        ck.data.logistic_regression_data(20, 5, scale=100.0)
    assert ck.data.logistic_regression_data(20, 5, scale=100.0, l2=0.1).optimal_loss > 0


def test_synthetic_generators_check_their_arguments() -> None:
    with pytest.raises(ValueError, match="feature_scales"):
        ck.data.linear_regression_data(10, 2, feature_scales=[1.0, -1.0])
    with pytest.raises(ValueError, match="n_classes=1"):
        ck.data.logistic_regression_data(10, 2, 1)
    with pytest.raises(ValueError, match="noise=-1"):
        ck.data.linear_regression_data(10, 2, noise=-1)
