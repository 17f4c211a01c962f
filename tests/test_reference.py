"""Every fast path of the trainer against the reference step (fa.model), in float64."""

import math

import numpy as np
import pytest
from array_api_compat import array_namespace

import fa
from fa import model
from fa.model import ACTIVATIONS, Activation

N, D, P, STEPS, SEEDS = 6, 15, 10, 6, [3, 4]
LR = {"linear": 1e-3, "relu": 2e-2, "tanh": 1e-1, "sigmoid": 1e-1}
SCHEDULES = {"constant": dict(lam=0.1), "release": dict(lam=0.1, lam_schedule="release",
                                                        lam_until=3),
             "decay": dict(lam=0.1, lam_schedule="decay", lam_gamma=0.8)}
PATHS = {"fused rowspace": dict(method="rowspace"), "fused direct": dict(method="direct"),
         "array-API rowspace": dict(method="rowspace", backend="numpy"),
         "reference": dict(method="reference")}


def oracle(X, y, *, activation, rule, lr, dropout=0.0, lam=0.0, lam_schedule="constant",
           lam_until=None, lam_gamma=None):
    """``STEPS`` calls of :func:`fa.model.step`; the dropout masks drawn as documented."""
    W, beta, b = fa.model.init(SEEDS, D, P, "float64")
    rngs = [model.rng(s, model.DROPOUT) for s in SEEDS]
    losses = []
    for t in range(STEPS + 1):
        mask = None
        if dropout:
            mask = np.stack([r.random((N, P)) >= dropout for r in rngs]) / (1 - dropout)
        lam_t = fa.loop.lam_at(t, lam, lam_schedule, lam_until, lam_gamma)
        W_next, beta_next, L = model.step(X, y, W, beta, b, activation=activation,
                                              rule=rule, eta=lr, lam=lam_t, mask=mask)
        losses.append(L)
        if t < STEPS:
            W, beta = W_next, beta_next
    return np.stack(losses, axis=1), W, beta


def assert_matches_oracle(activation, rule, options, path):
    kind = "linear" if activation == "linear" else "teacher"
    act = activation if activation in LR else "relu"
    X, y = fa.make_data(kind, N, D, width=P, activation=act, seed=SEEDS)
    lr = LR.get(activation, 2e-2)
    loss, W, beta = oracle(X, y, activation=activation, rule=rule, lr=lr, **options)
    res = fa.train(X, y, width=P, activation=activation, rule=rule, lr=lr, steps=STEPS,
                   seed=SEEDS, **options, **PATHS[path])
    np.testing.assert_allclose(res.loss, loss, rtol=1e-12)
    np.testing.assert_allclose(res.W, W, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(res.beta, beta, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("dropout", [0.0, 0.4])
@pytest.mark.parametrize("rule", ["fa", "bp"])
@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_fast_paths_equal_the_reference_step(activation, rule, dropout, schedule, path):
    assert_matches_oracle(activation, rule, dict(dropout=dropout, **SCHEDULES[schedule]), path)


def test_the_reference_is_the_paper(monkeypatch):
    """One step by hand, in the paper's matrices, for one relu network."""
    X, y = fa.make_data("teacher", N, D, width=P, activation="relu", seed=0)
    W, beta, b = (a[0] for a in fa.model.init([0], D, P, "float64"))
    H = X @ W.T
    A, Dm = np.maximum(H, 0), (H > 0).astype(float)
    e = A @ beta / np.sqrt(P) - y
    c = 2 / (N * np.sqrt(P))
    W1 = W - 0.1 * c * (Dm * np.outer(e, b)).T @ X
    beta1 = beta - 0.1 * (c * A.T @ e + 0.3 * beta)
    W_ref, beta_ref, L = model.step(X[None], y[None], W[None], beta[None], b[None],
                                        activation="relu", rule="fa", eta=0.1, lam=0.3)
    np.testing.assert_allclose(W_ref[0], W1, rtol=1e-13)
    np.testing.assert_allclose(beta_ref[0], beta1, rtol=1e-13)
    assert L[0] == pytest.approx(np.mean(e**2), rel=1e-14)


SOFTPLUS = Activation(
    psi=lambda h: math.log1p(math.exp(-abs(h))) + max(h, 0.0),
    dpsi=lambda h: 1.0 / (1.0 + math.exp(-h)),
    psi_array=lambda xp, H: xp.log1p(xp.exp(-xp.abs(H))) + xp.maximum(H, 0.0),
    dpsi_array=lambda xp, H: 1.0 / (1.0 + xp.exp(-H)))
LEAKY_RELU = Activation(
    psi=lambda h: h if h > 0.0 else 0.1 * h, dpsi=lambda h: 1.0 if h > 0.0 else 0.1,
    psi_array=lambda xp, H: xp.where(H > 0.0, H, 0.1 * H),
    dpsi_array=lambda xp, H: xp.where(H > 0.0, xp.ones_like(H), 0.1 * xp.ones_like(H)))


@pytest.mark.parametrize("name, entry", [("softplus", SOFTPLUS), ("leaky_relu", LEAKY_RELU)])
@pytest.mark.parametrize("path", PATHS)
def test_a_new_activation_is_one_table_entry(name, entry, path, monkeypatch):
    monkeypatch.setitem(ACTIVATIONS, name, entry)
    assert_matches_oracle(name, "fa", dict(dropout=0.4, lam=0.1), path)


@pytest.mark.parametrize("path", PATHS)
def test_a_new_rule_is_one_table_entry(path, monkeypatch):
    # Sign symmetry: the feedback has the signs of beta and the magnitudes of b.
    monkeypatch.setitem(model.RULES, "sign",
                        lambda beta, b: array_namespace(beta).sign(beta) * abs(b))
    assert_matches_oracle("tanh", "sign", dict(lam=0.1), path)
    X, y = fa.make_data("teacher", N, D, width=P, activation="tanh", seed=SEEDS)
    kw = dict(width=P, activation="tanh", lr=0.1, steps=STEPS, seed=SEEDS, **PATHS[path])
    assert not np.allclose(fa.train(X, y, rule="sign", **kw).W, fa.train(X, y, **kw).W)


def test_unknown_names_are_value_errors():
    with pytest.raises(ValueError, match="'activation'.*'relu'"):
        fa.model.activation("gelu")
    with pytest.raises(ValueError, match="'activation'"):
        fa.train(np.ones((3, 4)), np.ones(3), width=2, lr=0.1, steps=1, activation="gelu")
    with pytest.raises(ValueError, match="'rule'"):
        fa.train(np.ones((3, 4)), np.ones(3), width=2, lr=0.1, steps=1, rule="dfa")
