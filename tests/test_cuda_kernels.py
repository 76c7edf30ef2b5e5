"""The generated CUDA update kernels against the array path, bit for bit.

No GPU is needed: a stand-in for ``cupy.ElementwiseKernel`` compiles the generated kernel text
(the very operation, preamble and parameter lists CuPy would get) as C++ with g++, without
contracted multiply-adds as ``--fmad=false`` asks of NVRTC, and runs it elementwise with
CuPy's broadcasting rules. With CuPy and a GPU present, the same comparison runs on the device.
"""

from __future__ import annotations

import ctypes
import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from fusable import FUSABLE, ROWS, quadratic_problem
from hypothesis import given, settings
from hypothesis import strategies as st

import convexkit as ck
from convexkit.kernels.cuda import (
    CUDA_OPTIONS,
    cuda_trajectories,
    cuda_update,
    elementwise_parts,
)
from convexkit.kernels.fused import fused_trajectories, update_form

GXX = shutil.which("g++")
_CTYPES = {"float32": ("float", ctypes.c_float), "float64": ("double", ctypes.c_double)}


_LIBRARIES: dict[str, ctypes.CDLL] = {}


def _compile(source):
    # as NVRTC with --fmad=false: IEEE operations, none contracted into a multiply-add
    key = hashlib.sha256(source.encode()).hexdigest()[:16]
    if key not in _LIBRARIES:
        folder = Path(tempfile.mkdtemp())
        (folder / "kernel.cpp").write_text(source)
        result = subprocess.run(
            [GXX, "-O2", "-std=c++17", "-ffp-contract=off", "-fno-fast-math", "-shared"]
            + ["-fPIC", "-o", str(folder / "kernel.so"), str(folder / "kernel.cpp")],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
        _LIBRARIES[key] = ctypes.CDLL(str(folder / "kernel.so"))
    return _LIBRARIES[key]


class HostElementwiseKernel:
    """``cupy.ElementwiseKernel`` on the host: the kernel text compiled by g++."""

    def __init__(self, in_params, out_params, operation, name, preamble="", options=()):
        assert "--fmad=false" in options
        self.inputs = [p.split() for p in in_params.split(",")]
        self.outputs = [p.split() for p in out_params.split(",")]
        pointers = [
            f"{'const ' if i < len(self.inputs) else ''}{_CTYPES[t][0]}* {n}_p"
            for i, (t, n) in enumerate(self.inputs + self.outputs)
        ]
        loads = [f"const {_CTYPES[t][0]} {n} = {n}_p[i];" for t, n in self.inputs]
        stores = [f"{_CTYPES[t][0]}& {n} = {n}_p[i];" for t, n in self.outputs]
        source = "\n".join(
            [
                "#include <cmath>",
                "using namespace std;",
                "#define __device__",
                preamble,
                f'extern "C" void {name}(long n, {", ".join(pointers)}) {{',
                "  for (long i = 0; i < n; ++i) {",
                *loads,
                *stores,
                operation,
                "  }",
                "}",
            ]
        )
        self.function = getattr(_compile(source), name)

    def __call__(self, *args):
        given_inputs = args[: len(self.inputs)]
        given_outputs = list(args[len(self.inputs) :])
        shape = np.broadcast_shapes(*(np.shape(a) for a in given_inputs))
        inputs = [
            np.ascontiguousarray(np.broadcast_to(np.asarray(a, dtype=t), shape))
            for a, (t, _) in zip(given_inputs, self.inputs, strict=True)
        ]
        outputs = given_outputs or [np.empty(shape, dtype=t) for t, _ in self.outputs]
        for out, (t, _) in zip(outputs, self.outputs, strict=True):
            assert out.dtype == np.dtype(t) and out.flags.c_contiguous and out.shape == shape
        pointers = [a.ctypes.data_as(ctypes.c_void_p) for a in inputs + outputs]
        self.function(ctypes.c_long(int(np.prod(shape))), *pointers)
        return tuple(outputs) if len(outputs) > 1 else outputs[0]


class HostRawKernel:
    """``cupy.RawKernel`` on the host: the kernel compiled by g++ and launched by a loop over
    blocks and threads that sets blockIdx and threadIdx as CUDA would."""

    def __init__(self, code, name, options=()):
        assert "--fmad=false" in options
        head = code[code.index(f"void {name}(") :]
        parameters = head[head.index("(") + 1 : head.index(")")]
        names = [p.split()[-1].lstrip("*") for p in parameters.split(",")]
        source = "\n".join(
            [
                "#include <cmath>",
                "using namespace std;",
                "struct ck_dim3 { unsigned int x, y, z; };",
                "static ck_dim3 blockIdx, blockDim, threadIdx;",
                "#define __device__",
                "#define __global__",
                code,
                'extern "C" void ck_launch(unsigned int blocks, unsigned int threads,',
                f"    {parameters}) {{",
                "  blockDim.x = threads;",
                "  for (unsigned int b = 0; b < blocks; ++b) {",
                "    blockIdx.x = b;",
                "    for (unsigned int t = 0; t < threads; ++t) {",
                f"      threadIdx.x = t; {name}({', '.join(names)});",
                "    }",
                "  }",
                "}",
            ]
        )
        self.launch = _compile(source).ck_launch

    def __call__(self, grid, block, args):
        scalars = {np.int64: ctypes.c_longlong, np.int32: ctypes.c_int, np.float64: ctypes.c_double}
        converted = [
            a.ctypes.data_as(ctypes.c_void_p) if isinstance(a, np.ndarray) else scalars[type(a)](a)
            for a in args
        ]
        for a in args:
            assert not isinstance(a, np.ndarray) or a.flags.c_contiguous
        self.launch(ctypes.c_uint(grid[0]), ctypes.c_uint(block[0]), *converted)


needs_gxx = pytest.mark.skipif(GXX is None, reason="g++ compiles the CUDA kernel text on the host")


def _device_factory():
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed (the gpu extra)")
    try:
        cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError as err:
        pytest.skip(f"no CUDA device: {err}")
    return cupy


def _compare(name, dtype, arrays, seed, factory, to_device, to_host):
    rng = np.random.default_rng(seed)
    optimizer = FUSABLE[name](rng, arrays)
    kernel, reason = cuda_update(optimizer, factory)
    assert kernel is not None, reason
    x = rng.standard_normal((ROWS, 37)).astype(dtype)
    state = optimizer.init(x)
    x_dev, state_dev = to_device(x), tuple(to_device(np.asarray(s)) for s in state)
    for t in range(4):
        g = (rng.standard_normal(x.shape) * 10.0 ** rng.integers(-3, 3)).astype(dtype)
        g.flat[rng.integers(0, g.size, 3)] = [np.inf, -np.inf, np.nan]
        with np.errstate(all="ignore"):
            x, state = optimizer.update(x, g, state, t)
        x_dev, state_dev = kernel.update(x_dev, to_device(g), state_dev, t)
        np.testing.assert_array_equal(to_host(x_dev), x)
        for mine, theirs in zip(state_dev, state, strict=True):
            np.testing.assert_array_equal(to_host(mine), np.asarray(theirs))
    assert type(state_dev) is type(state)


@needs_gxx
@pytest.mark.parametrize("name", sorted(FUSABLE))
@pytest.mark.parametrize(
    "dtype,arrays", [(np.float64, False), (np.float32, True)], ids=["float64", "float32-arrays"]
)
@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_cuda_kernel_text_equals_the_array_path_bit_for_bit(name, dtype, arrays, seed):
    _compare(name, dtype, arrays, seed, HostElementwiseKernel, np.asarray, np.asarray)


@needs_gxx
def test_in_place_steps_equal_pure_steps():
    optimizer = ck.optim.adam(np.array([0.1, 0.01, 0.001]))
    kernel, _ = cuda_update(optimizer, HostElementwiseKernel)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 50))
    state = tuple(np.asarray(s) for s in optimizer.init(x))
    x_inplace, state_inplace = x.copy(), tuple(s.copy() for s in state)
    for t in range(3):
        g = rng.standard_normal(x.shape)
        x, state = kernel.update(x, g, state, t)
        kernel.step_inplace(x_inplace, g, state_inplace, t)
    np.testing.assert_array_equal(x_inplace, x)
    np.testing.assert_array_equal(state_inplace[1], state[1])


def test_kernel_text_asks_for_no_multiply_add_and_reads_inputs_first():
    form, _ = update_form(ck.optim.adam(0.1))
    parts = elementwise_parts(form, np.float32)
    assert parts["options"] == CUDA_OPTIONS == ("--fmad=false",)
    lines = parts["operation"].splitlines()
    first_store = next(i for i, line in enumerate(lines) if "_out = " in line)
    assert all("_in;" not in line for line in lines[first_store:])
    assert parts["in_params"].startswith("float32 x_in, float32 g_in, float32 s0_in")
    with pytest.raises(ValueError, match="dtype='float16'.*float32 or float64"):
        elementwise_parts(form, np.float16)


def test_without_cupy_the_reason_says_so(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "cupy", None)
    kernel, reason = cuda_update(ck.optim.adam(0.1))
    assert kernel is None and "CuPy is not installed" in reason


@pytest.mark.parametrize("name", sorted(FUSABLE))
def test_cuda_kernels_on_the_device_equal_the_array_path(name):
    cupy = _device_factory()
    _compare(name, np.float64, True, 0, cupy.ElementwiseKernel, cupy.asarray, cupy.asnumpy)
    _compare(name, np.float32, False, 1, cupy.ElementwiseKernel, cupy.asarray, cupy.asnumpy)


@needs_gxx
@pytest.mark.parametrize("name", sorted(FUSABLE))
@pytest.mark.parametrize("threshold", [1e3, np.inf])
@settings(max_examples=2, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_cuda_trajectories_equal_the_array_path_bit_for_bit(name, threshold, seed):
    rng = np.random.default_rng(seed)
    optimizer = FUSABLE[name](rng, False)
    batch, steps = 130, 200  # two blocks of 128 threads, the second one partly idle
    lam = rng.uniform(0.5, 2, batch) * 10.0 ** rng.integers(-1, 3, batch)
    x0 = rng.uniform(-3, 3, (batch, 1)) * 10.0 ** rng.integers(0, 200, (batch, 1))
    x0[:2, 0] = [np.nan, np.inf]
    chosen = [0, 1, 99, 200]
    result, reason = cuda_trajectories(
        quadratic_problem(),
        optimizer,
        x0,
        steps,
        params={"lam": lam},
        record_steps=chosen,
        threshold=threshold,
        kernel_factory=HostRawKernel,
    )
    assert reason == "fused", reason
    trace = ck.run(
        quadratic_problem(),
        optimizer,
        x0,
        steps,
        params={"lam": lam},
        record=chosen,
        threshold=threshold,
        path="array",
    )
    np.testing.assert_array_equal(result["diverged_at"], trace.diverged_at)
    np.testing.assert_array_equal(result["xs"], trace.x)
    np.testing.assert_array_equal(result["loss"], trace.loss)
    np.testing.assert_array_equal(result["x"], trace.x_final)
    assert np.all(x0[2:] == trace.x[0][2:]), "the caller's x0 must not be modified"


@needs_gxx
def test_cuda_and_cpu_trajectory_kernels_agree_on_a_two_dimensional_problem():
    # both print the gradient with the same printer, so they agree bit for bit
    a, b = sp.symbols("a b")
    problem = ck.Problem((1 - a) ** 2 + 100 * (b - a**2) ** 2)
    optimizer = ck.optim.adam(np.geomspace(1e-3, 1e-1, 64))
    x0 = np.random.default_rng(2).standard_normal((64, 2)).astype(np.float32)
    options = {"record_steps": [0, 10, 30], "threshold": 1e10}
    gpu, _ = cuda_trajectories(
        problem, optimizer, x0, 30, kernel_factory=HostRawKernel, threads_per_block=32, **options
    )
    cpu, reason = fused_trajectories(problem, optimizer, x0, 30, **options)
    if cpu is None:
        pytest.skip(reason)
    for key in ("x", "xs", "loss", "diverged_at"):
        np.testing.assert_array_equal(gpu[key], cpu[key])
    np.testing.assert_array_equal(gpu["state"][1], cpu["state"][1])


def test_run_on_the_device_takes_the_trajectory_kernel():
    cupy = _device_factory()
    problem = quadratic_problem()
    optimizer = ck.optim.momentum(np.linspace(0.1, 3.9, 256), 0.9)
    x0 = cupy.ones((256, 1))
    fused = ck.run(problem, optimizer, x0, 300, params={"lam": 1.0})
    plain = ck.run(problem, optimizer, x0, 300, params={"lam": 1.0}, path="array")
    assert fused.info["path"] == "fused"
    np.testing.assert_array_equal(cupy.asnumpy(fused.x), cupy.asnumpy(plain.x))
    noisy = ck.run(problem, optimizer, x0, 30, params={"lam": 1.0}, noise=0.1, seed=0)
    assert noisy.info["path"] == "fused-update"


@needs_gxx
def test_every_operation_the_printer_knows_matches_numpy_in_cuda_text():
    # piecewise, relations, max/min with NaN, sign, powers and non-finite constants, through
    # an elementwise kernel built from the printer's CUDA dialect
    from convexkit.kernels.cuda import PREAMBLE, _Cuda
    from convexkit.kernels.fused import _Program

    x = sp.Symbol("x", real=True)
    expr = (
        sp.Piecewise((x**3, x > 1), (sp.Max(x, -2) + sp.Min(x, sp.oo), True))
        + sp.sign(x) * abs(x) ** sp.Rational(1, 2)
        + 1 / (1 + x**2)
        + sp.Piecewise((sp.oo, x > 10), (sp.nan, x < -10), (0, True))
    )
    program = _Program({x}, {x}, "c", _Cuda("double"))
    result = program(expr)
    kernel = HostElementwiseKernel(
        "float64 x_in",
        "float64 y",
        "\n".join(["const double x = x_in;", *program.hoisted, *program.inner, f"y = {result};"]),
        "printer_check",
        preamble=PREAMBLE,
        options=CUDA_OPTIONS,
    )
    values = np.array([-30.0, -3.0, -1.0, -0.0, 0.0, 0.5, 1.0, 2.0, 20.0, np.inf, -np.inf, np.nan])
    with np.errstate(all="ignore"):
        expected = sp.lambdify(x, expr, "numpy")(values)
    np.testing.assert_array_equal(kernel(values), expected)


@needs_gxx
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_scheduled_learning_rates_in_cuda_text_equal_the_array_path(dtype):
    optimizer = ck.optim.momentum(ck.schedules.cosine(60, 0.5, final_lr=0.01), 0.9)
    rng = np.random.default_rng(4)
    x0 = rng.standard_normal((40, 1)).astype(dtype)
    lam = rng.uniform(0.5, 2.0, 40).astype(dtype)
    options = {"params": {"lam": lam}, "threshold": 1e3}
    result, reason = cuda_trajectories(
        quadratic_problem(), optimizer, x0, 60, kernel_factory=HostRawKernel, **options
    )
    assert reason == "fused", reason
    trace = ck.run(
        quadratic_problem(), optimizer, x0, 60, path="array", dtype=np.dtype(dtype).name, **options
    )
    np.testing.assert_array_equal(result["xs"], trace.x)
    kernel, _ = cuda_update(optimizer, HostElementwiseKernel)
    x, state = x0.copy(), optimizer.init(x0)
    x_kernel, state_kernel = x0.copy(), tuple(np.asarray(s) for s in state)
    for t in range(5):
        g = lam[:, None] * x
        x, state = optimizer.update(x, g, state, t)
        x_kernel, state_kernel = kernel.update(x_kernel, lam[:, None] * x_kernel, state_kernel, t)
    np.testing.assert_array_equal(x_kernel, x)
