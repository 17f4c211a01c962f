"""The array-API backends of fa.train against the default (fused numpy) path."""

import numpy as np
import pytest

import fa

N, D, P, SEEDS = 10, 30, 40, [0, 1, 2]


def backends():
    out = ["numpy", "array_api_strict"]
    try:
        import torch  # noqa: F401
        out.append("torch")
    except ImportError:
        out.append(pytest.param("torch", marks=pytest.mark.skip(reason="torch is not installed")))
    return out


@pytest.fixture(scope="module")
def data():
    return fa.make_data("teacher", N, D, width=P, activation="tanh", seed=SEEDS)


@pytest.mark.parametrize("method", ["rowspace", "direct"])
@pytest.mark.parametrize("options", [
    dict(activation="relu", lam=0.05),
    dict(activation="tanh", rule="bp", lr=0.1, dropout=0.3),
    dict(activation="sigmoid", lr=0.1, lam=0.01, lam_schedule="decay", lam_gamma=0.99),
    dict(activation="linear", lr=1e-3, lam=0.2, lam_schedule="release", lam_until=40),
    dict(lam=0.05, until_converged=True, check_every=20, tol=1e-2, steps=40),
    dict(dropout=0.5, until_converged=True, converge_on="alignment", check_every=20,
         tol=1e-3, steps=40),
])
@pytest.mark.parametrize("backend", backends())
def test_backend_gives_the_default_curves(backend, method, options, data):
    X, y = data
    kw = dict(width=P, lr=0.02, steps=120, seed=SEEDS, record_every=10, method=method)
    kw.update(options)
    default = fa.train(X, y, **kw)
    other = fa.train(X, y, backend=backend, **kw)
    np.testing.assert_array_equal(other.steps, default.steps)
    np.testing.assert_array_equal(other.record_steps, default.record_steps)
    np.testing.assert_allclose(other.loss, default.loss, rtol=1e-9)
    np.testing.assert_allclose(other.alignment, default.alignment, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(other.W, default.W, rtol=1e-8, atol=1e-10)
    assert other.config["backend"] == backend


@pytest.mark.parametrize("backend", backends())
def test_float32_loss_still_falls_by_many_orders(backend):
    X, y = fa.make_data("teacher", 20, 60, width=400, activation="relu", seed=[0, 1])
    res = fa.train(X, y, width=400, activation="relu", lr=0.02, steps=600, seed=[0, 1],
                   dtype="float32", backend=backend)
    assert res.W.dtype == np.float32
    assert np.all(res.loss[:, 0] / res.loss[:, -1] > 1e4), res.loss[:, -1]


@pytest.mark.parametrize("backend", backends())
def test_divergence_is_detected_on_every_backend(backend):
    X, y = fa.make_data("teacher", N, D, width=P, activation="relu", seed=[0, 1])
    with pytest.warns(fa.DivergenceWarning):
        res = fa.train(X, y, width=P, lr=50.0, steps=300, seed=[0, 1], backend=backend)
    assert res.diverged.all() and np.all(res.steps < 300)


def test_missing_backend_says_how_to_install(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "cupy", None)          # as if not installed
    monkeypatch.delitem(sys.modules, "array_api_compat.cupy", raising=False)
    with pytest.raises(ValueError, match=r"'backend'.*install cupy: the CuPy wheel of your "
                                         r"CUDA version, e\.g\. `pip install cupy-cuda12x`"):
        fa.train(np.ones((3, 4)), np.ones(3), width=2, lr=0.1, steps=1, backend="cupy")
