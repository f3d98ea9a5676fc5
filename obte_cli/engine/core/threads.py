"""Thread pools of the numerical libraries (OpenMP, BLAS) for small fits."""

from __future__ import annotations


def one_thread():
    """A context in which OpenMP and BLAS use one thread (threadpoolctl, which scikit-learn depends on).

    For small fits such as the composition ΔG model's (thousands of rows, 45 features) a second thread saves
    little on an idle machine, and on a busy one its spin-waits cost far more: one ProNAB fold took 2.3
    CPU-seconds (24.6 s wall) in one thread and 45.3 CPU-seconds (321 s wall) in two, at a load average of
    11 on 2 cores. scikit-learn's histogram gradient boosting and ridge give the same model either way."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)
