"""BLAS/LAPACK on one thread while decoders fit (threadpoolctl, a scikit-learn dependency).

Fits then give the same bits on every machine, and a fit does not start threads that fight
a running loop (or other processes) for the cores: on a loaded 2-core machine, a threaded
batched ``eigh`` of covariance matrices ran 15x slower than on one thread.
"""

from __future__ import annotations

from typing import Any

__all__ = ["single_threaded_blas"]


def single_threaded_blas() -> Any:
    """Context manager limiting BLAS/LAPACK to one thread."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")
