"""The one place that sets Numba options for every compiled kernel in neuroloop.

``cache=True`` keeps compiled code across processes, ``nogil=True`` lets a kernel run while
another thread (a serial reader, the recorder) holds the GIL, and ``error_model="numpy"`` gives
NumPy semantics for division by zero instead of raising. We never pass ``fastmath``: it would
let LLVM assume there are no NaN or infinities, and the safety path depends on seeing them.

Set ``NUMBA_DISABLE_JIT=1`` to run every kernel as plain Python (for coverage or debugging).

Vector width: on a CPU with AVX-512, LLVM's tuning for recent Xeons still prefers 256-bit
vectors. Our kernels are long loops over contiguous channels with no cross-lane arithmetic, so
they gain from the full 512-bit width (the bsi feature step ~57 -> ~46 us per hop on the
development machine) and stay bit-identical (each lane does the same IEEE operations in the
same order; nothing is reassociated). :func:`_prefer_full_vector_width` lifts that preference
before the first compile, unless the user set ``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES``
themselves or ``NEUROLOOP_VECTOR_WIDTH=256``. Numba keys its on-disk cache on the CPU
features, so code compiled either way is never mixed up.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import numba

F = TypeVar("F", bound=Callable[..., Any])

_OPTIONS: dict[str, Any] = {"cache": True, "nogil": True, "error_model": "numpy"}


def _prefer_full_vector_width() -> bool:
    """Let LLVM use 512-bit vectors where the host has AVX-512 (see the module docstring).

    Takes effect only if no Numba code was compiled yet in this process (the code generator
    reads ``numba.config.CPU_FEATURES`` once, when it is created). Returns True when set.
    """
    if os.environ.get("NUMBA_CPU_FEATURES") or os.environ.get("NUMBA_CPU_NAME"):
        return False
    if os.environ.get("NEUROLOOP_VECTOR_WIDTH", "").strip() == "256":
        return False
    from numba.core import config as numba_config
    from numba.core.codegen import get_host_cpu_features

    # numba.core.config sets its options at import time (mypy cannot see them)
    if getattr(numba_config, "CPU_FEATURES", None) is not None:
        return False

    features = get_host_cpu_features()
    if "+avx512f" not in features.split(","):
        return False
    setattr(numba_config, "CPU_FEATURES", features + ",-prefer-256-bit")  # noqa: B010
    return True


_prefer_full_vector_width()


def jit(func: F) -> F:
    """Compile ``func`` in nopython mode with neuroloop's standard options."""
    compiled: F = numba.njit(**_OPTIONS)(func)  # a Dispatcher, called like ``func``
    return compiled


def jit_uncached(func: F) -> F:
    """:func:`jit` without the on-disk cache, for kernels that call LAPACK through a ctypes
    function pointer (:func:`lapack_function`): Numba cannot cache code that embeds a
    pointer, which changes from process to process. Such kernels compile at warm-up."""
    opts = dict(_OPTIONS, cache=False)
    compiled: F = numba.njit(**opts)(func)
    return compiled


def lapack_function(name: str, n_args: int) -> Any:
    """A LAPACK routine of SciPy's ``cython_lapack`` as a ctypes function taking ``n_args``
    pointers (Fortran calling convention: every argument by reference), callable from
    :func:`jit_uncached` kernels with ``array.ctypes`` arguments and preallocated workspace,
    so that compiled code can call e.g. ``dsyev`` without allocating."""
    import ctypes

    from numba.extending import get_cython_function_address

    addr = get_cython_function_address("scipy.linalg.cython_lapack", name)
    proto = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * n_args))
    return proto(addr)


def is_compiled(func: Any) -> bool:
    """True when ``func`` is a Numba dispatcher with at least one compiled signature."""
    sigs = getattr(func, "signatures", None)
    return bool(sigs)


def compiled_signature_count(func: Any) -> int:
    """Number of signatures compiled so far (a change inside the loop means a JIT compile)."""
    return len(getattr(func, "signatures", ()) or ())


def total_compiled_signatures(prefix: str = "neuroloop") -> int:
    """Compiled signatures summed over every Numba dispatcher in loaded ``prefix*`` modules.

    The loop compares this before and after running: any difference is a JIT compile inside
    the loop, which is a bug (a latency spike of tens of milliseconds).
    """
    import sys

    from numba.core.registry import CPUDispatcher

    total = 0
    for name, module in list(sys.modules.items()):
        if not (name == prefix or name.startswith(prefix + ".")) or module is None:
            continue
        for obj in list(vars(module).values()):
            if isinstance(obj, CPUDispatcher):
                total += len(obj.signatures)
    return total
