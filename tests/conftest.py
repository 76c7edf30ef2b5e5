"""Shared fixtures: hypothesis profiles and the array backends every numerical test runs on."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=30,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=30)
settings.register_profile("long", deadline=None, max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


def _strict_devices():
    import array_api_strict as strict

    return [strict.Device("CPU_DEVICE"), strict.Device("device1")]


BACKENDS = ["numpy", "strict-cpu", "strict-device1", "cupy"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    """(xp, device) for NumPy, array-api-strict on its CPU and fake ``device1``, and CuPy.

    CuPy is skipped, with the reason, where it is not installed or no GPU is visible.
    """
    name = request.param
    if name == "numpy":
        return np, None
    if name.startswith("strict"):
        import array_api_strict as strict

        return strict, _strict_devices()[0 if name == "strict-cpu" else 1]
    if importlib.util.find_spec("cupy") is None:
        pytest.skip("CuPy is not installed (pip install 'convexkit[gpu]' on a CUDA machine)")
    import cupy

    try:
        cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # noqa: BLE001 - any CUDA failure means no usable GPU
        pytest.skip(f"CuPy is installed but no GPU is usable: {err}")
    return cupy, None
