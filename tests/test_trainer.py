"""The two-layer trainer against independent computations (docs/model.md)."""

import itertools
import os
import warnings

import numpy as np
import pytest

import fa
from fa import trainer as trainer_module
from fa.model import ACTIVATIONS

N, D, P = 12, 30, 40


def reference_psi(name, H):
    return {"linear": lambda h: h, "relu": lambda h: np.maximum(h, 0),
            "tanh": np.tanh, "sigmoid": lambda h: 1 / (1 + np.exp(-h))}[name](H)


def reference_dpsi(name, H):
    s = 1 / (1 + np.exp(-H))
    return {"linear": np.ones_like(H), "relu": (H > 0).astype(float),
            "tanh": 1 - np.tanh(H) ** 2, "sigmoid": s * (1 - s)}[name]


def reference_loss(X, y, W, beta, act):
    f = reference_psi(act, X @ W.T) @ beta / np.sqrt(len(beta))
    return np.mean((f - y) ** 2)


def reference_step(X, y, W, beta, b, act, rule, lam, lr):
    """One step written straight from the paper, loop-free but unfused."""
    n, p = len(y), len(beta)
    H = X @ W.T
    A, Dd = reference_psi(act, H), reference_dpsi(act, H)
    e = A @ beta / np.sqrt(p) - y
    g_beta = 2 / (n * np.sqrt(p)) * A.T @ e + lam * beta
    v = b if rule == "fa" else beta
    G_W = 2 / (n * np.sqrt(p)) * (Dd * np.outer(e, v)).T @ X
    return W - lr * G_W, beta - lr * g_beta


def initial_params(seed, d=D, p=P):
    W, beta, b = fa.model.init([seed], d, p, "float64")
    return W[0], beta[0], b[0]


@pytest.fixture(scope="module")
def data():
    return fa.make_data("teacher", N, D, width=P, activation="tanh", seed=3)


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_bp_gradient_matches_finite_differences(act, data):
    X, y = data
    lr = 1e-4
    W0, beta0, _ = initial_params(7)
    res = fa.train(X, y, width=P, activation=act, rule="bp", lr=lr, steps=1, seed=7)
    G_W = (W0 - res.W) / lr
    g_beta = (beta0 - res.beta) / lr
    rng = np.random.default_rng(0)
    eps = 1e-6
    for _ in range(5):
        i, j = rng.integers(P), rng.integers(D)
        Wp, Wm = W0.copy(), W0.copy()
        Wp[i, j] += eps
        Wm[i, j] -= eps
        fd = (reference_loss(X, y, Wp, beta0, act) - reference_loss(X, y, Wm, beta0, act)) / (2 * eps)
        assert G_W[i, j] == pytest.approx(fd, rel=1e-4, abs=1e-7)
        k = rng.integers(P)
        bp_, bm_ = beta0.copy(), beta0.copy()
        bp_[k] += eps
        bm_[k] -= eps
        fd = (reference_loss(X, y, W0, bp_, act) - reference_loss(X, y, W0, bm_, act)) / (2 * eps)
        assert g_beta[k] == pytest.approx(fd, rel=1e-4, abs=1e-7)


@pytest.mark.parametrize("rule", ["fa", "bp"])
@pytest.mark.parametrize("lam", [0.0, 0.3])
@pytest.mark.parametrize("method", ["rowspace", "direct"])
def test_one_step_matches_hand_computation(rule, lam, method, data):
    X, y = data
    W0, beta0, b = initial_params(11)
    W1, beta1 = reference_step(X, y, W0, beta0, b, "relu", rule, lam, lr=0.05)
    res = fa.train(X, y, width=P, activation="relu", rule=rule, lam=lam, lr=0.05,
                   steps=1, seed=11, method=method)
    np.testing.assert_allclose(res.W, W1, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(res.beta, beta1, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(res.b, b)
    assert res.loss[0] == pytest.approx(reference_loss(X, y, W0, beta0, "relu"), rel=1e-12)
    assert res.loss[1] == pytest.approx(reference_loss(X, y, W1, beta1, "relu"), rel=1e-10)


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_fa_with_b_equal_to_beta_is_bp(act, data, monkeypatch):
    X, y = data
    kwargs = dict(width=P, activation=act, lam=0.1, lr=0.01, steps=300, seed=[1, 2])
    bp = fa.train(X, y, rule="bp", **kwargs)
    draw = fa.model.init

    def b_is_beta(seeds, d, p, dtype):
        # The same array object: FA's feedback then *is* the current beta at every step.
        W, beta, _ = draw(seeds, d, p, dtype)
        return W, beta, beta

    monkeypatch.setattr(fa.model, "init", b_is_beta)
    fa_run = fa.train(X, y, rule="fa", **kwargs)
    np.testing.assert_array_equal(fa_run.loss, bp.loss)
    np.testing.assert_array_equal(fa_run.W, bp.W)
    np.testing.assert_array_equal(fa_run.beta, bp.beta)


@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("rule", ["fa", "bp"])
@pytest.mark.parametrize("lam", [0.0, 0.05])
def test_rowspace_equals_direct_over_thousands_of_steps(act, rule, lam):
    lr = {"linear": 1e-3, "relu": 1e-2, "tanh": 1e-1, "sigmoid": 1e-1}[act]
    kind = "linear" if act == "linear" else "teacher"
    X, y = fa.make_data(kind, 20, 60, width=50, activation=act, seed=0)
    kw = dict(width=50, activation=act, rule=rule, lam=lam, lr=lr, steps=3000, seed=0,
              record_every=100)
    a = fa.train(X, y, method="rowspace", **kw)
    b = fa.train(X, y, method="direct", **kw)
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(a.W, b.W, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(a.beta, b.beta, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(a.alignment, b.alignment, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("options", [
    dict(),
    dict(dropout=0.3),
    dict(until_converged=True, check_every=50, tol=1e-2, lam=0.05),
    dict(lam=0.1, lam_schedule="release", lam_until=40),
])
def test_replicas_in_one_call_equal_one_at_a_time(options):
    seeds = [4, 5, 6]
    X, y = fa.make_data("teacher", N, D, width=P, activation="relu", seed=seeds)
    kw = dict(width=P, activation="relu", lr=0.02, steps=200, record_every=7, **options)
    stacked = fa.train(X, y, seed=seeds, **kw)
    for r, s in enumerate(seeds):
        single = fa.train(X[r], y[r], seed=s, **kw)
        assert stacked.steps[r] == single.steps
        T = single.steps
        np.testing.assert_allclose(stacked.loss[r, :T + 1], single.loss, rtol=1e-12)
        assert np.all(np.isnan(stacked.loss[r, T + 1:]))
        cols = np.searchsorted(stacked.record_steps, single.record_steps)
        np.testing.assert_array_equal(stacked.record_steps[cols], single.record_steps)
        np.testing.assert_allclose(stacked.alignment[r, cols], single.alignment, rtol=1e-12)
        np.testing.assert_allclose(stacked.W[r], single.W, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(stacked.beta[r], single.beta, rtol=1e-12, atol=1e-12)


def test_chunking_to_a_memory_budget_changes_nothing():
    seeds = [0, 1, 2, 3, 4]
    X, y = fa.make_data("teacher", N, D, width=P, activation="relu", seed=seeds)
    kw = dict(width=P, activation="relu", lr=0.02, steps=100, seed=seeds)
    whole = fa.train(X, y, **kw)
    per = trainer_module.bytes_per_replica(N, D, P)
    chunked = fa.train(X, y, memory_budget=2 * per, **kw)
    np.testing.assert_array_equal(whole.loss, chunked.loss)
    np.testing.assert_array_equal(whole.W, chunked.W)


def test_same_seed_same_numbers_different_seed_different_numbers():
    X, y = fa.make_data("teacher", N, D, width=P, activation="sigmoid", seed=0)
    kw = dict(width=P, activation="sigmoid", lr=0.1, steps=50, dropout=0.2)
    a, b, c = (fa.train(X, y, seed=s, **kw) for s in (9, 9, 10))
    np.testing.assert_array_equal(a.loss, b.loss)
    np.testing.assert_array_equal(a.W, b.W)
    assert not np.array_equal(a.b, c.b)
    X2, y2 = fa.make_data("teacher", N, D, width=P, activation="sigmoid", seed=0)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)


def test_a_seed_draws_the_same_numbers_in_every_setting():
    """Common random numbers, as docs/protocols.md describes them."""
    X, y = fa.make_data("teacher", N, D, width=P, activation="relu", seed=3)
    kw = dict(width=P, activation="relu", lr=0.02, steps=5, seed=3)
    runs = [fa.train(X, y, lam=0.0, **kw), fa.train(X, y, lam=0.5, **kw),
            fa.train(X, y, dropout=0.5, **kw), fa.train(X, y, rule="bp", **kw)]
    for run in runs[1:]:
        np.testing.assert_array_equal(run.b, runs[0].b)
    # Across widths: the same X, and the narrow network's first layer is the wide one's top rows.
    X_wide, _ = fa.make_data("teacher", N, D, width=2 * P, activation="tanh", seed=3)
    np.testing.assert_array_equal(X_wide, X)
    W, _, _ = fa.model.init([3], D, P, np.float64)
    W_wide, _, _ = fa.model.init([3], D, 2 * P, np.float64)
    np.testing.assert_array_equal(W_wide[:, :P], W)


def test_make_data_protocol():
    X, y = fa.make_data("linear", 50, 150, seed=[0, 1])
    assert X.shape == (2, 50, 150) and y.shape == (2, 50)
    assert abs(X.std() - 1) < 0.02          # N(0, 1) inputs, not rescaled by 1/sqrt(d)
    theta, *_ = np.linalg.lstsq(X[0], y[0], rcond=None)
    np.testing.assert_allclose(X[0] @ theta, y[0], atol=1e-8)   # noiseless linear
    Xt, yt = fa.make_data("teacher", 50, 150, width=200, activation="relu", seed=0)
    np.testing.assert_array_equal(Xt, X[0])       # X depends on the seed, not the kind
    assert np.all(np.isfinite(yt)) and yt.std() > 0.1


def test_make_data_is_the_same_for_any_number_of_blas_threads():
    """The sweeps draw their data on one BLAS thread; by hand, with every core, the same
    seeds must give the same bits, or a cached run and its rerun would differ."""
    from threadpoolctl import threadpool_limits

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    for act, width in itertools.product(ACTIVATIONS, (100, 200)):
        kwargs = dict(width=width, activation=act, seed=[0, 1, 2, 3])
        by_hand = fa.make_data("teacher", 50, 150, **kwargs)
        with threadpool_limits(limits=1):
            in_a_sweep = fa.make_data("teacher", 50, 150, **kwargs)
        with threadpool_limits(limits=max(cores or 1, 2)):
            many = fa.make_data("teacher", 50, 150, **kwargs)
        for got in (by_hand, many):
            np.testing.assert_array_equal(got[1], in_a_sweep[1], err_msg=f"{act}, p={width}")


def test_lambda_schedules():
    X, y = fa.make_data("teacher", N, D, width=P, activation="relu", seed=0)
    kw = dict(width=P, activation="relu", lr=0.02, steps=300, lam=0.2, seed=0)
    constant = fa.train(X, y, **kw)
    never_released = fa.train(X, y, lam_schedule="release", lam_until=300, **kw)
    no_decay = fa.train(X, y, lam_schedule="decay", lam_gamma=1.0, **kw)
    np.testing.assert_array_equal(constant.beta, never_released.beta)
    np.testing.assert_allclose(constant.beta, no_decay.beta, rtol=1e-12)
    released = fa.train(X, y, lam_schedule="release", lam_until=100, **kw)
    np.testing.assert_array_equal(released.loss[:101], constant.loss[:101])
    assert released.loss[-1] < constant.loss[-1]
    assert fa.loop.lam_at(10, 0.5, "decay", None, 0.9) == pytest.approx(0.5 * 0.9**10)


def walk(rule, value):
    """Drive ``rule`` as the trainer does; return (updates taken, capped)."""
    t = 0
    while not rule.done(t)[0]:
        rule.check(t, [value(t)])
        t += 1
    return t, bool(rule.capped(t)[0])


def test_stopping_rule_branch_by_branch():
    Stopping = fa.loop.Stopping
    kw = dict(steps=10, until_converged=True, check_every=3, tol=0.1, cap=40)
    # Checks at t = 2, 5, 8, 11, ...; t counts the updates taken.
    assert [t for t in range(12) if Stopping(1, **kw).is_check(t)] == [2, 5, 8, 11]

    # Latched before T(p) = 10 (the check at t = 5 moved by 0.05): exactly T(p) updates.
    seq = {2: 5.0, 5: 5.05, 8: 9.0}
    assert walk(Stopping(1, **kw), lambda t: seq.get(t, np.nan)) == (10, False)
    # The latch is never unset: later large moves change nothing.
    rule = Stopping(1, **kw)
    rule.check(2, [0.05])
    assert rule.check(5, [100.0])[0] and rule.check(8, [-100.0])[0]

    # No latch before T(p): stops right after the first later check below tol
    # (the check at t = 14 compares 3.05 with 3.0), i.e. after 15 updates.
    values = {2: 9.0, 5: 7.0, 8: 5.0, 11: 3.0, 14: 3.05}
    assert walk(Stopping(1, **kw), lambda t: values.get(t, np.nan)) == (15, False)

    # First comparison with 0 for the loss ...
    assert walk(Stopping(1, first=0.0, **kw), lambda t: 0.05 if t == 2 else 9.0 * t) \
        == (10, False)
    assert walk(Stopping(1, first=0.0, **kw), lambda t: 0.95 if t == 2 else 9.0 * t) \
        == (40, True)
    # ... and with 1 for the alignment.
    assert walk(Stopping(1, first=1.0, **kw), lambda t: 0.95 if t == 2 else 9.0 * t) \
        == (10, False)
    assert walk(Stopping(1, first=1.0, **kw), lambda t: 0.05 if t == 2 else 9.0 * t) \
        == (40, True)

    # The cap: never latched, stopped at cap and flagged; the default cap is 10 T(p).
    assert walk(Stopping(1, **kw), lambda t: float(t)) == (40, True)
    assert Stopping(1, steps=10, until_converged=True).cap == 100
    # Without until_converged: exactly `steps`, never capped, whatever the values.
    assert walk(Stopping(1, steps=10), lambda t: 0.0) == (10, False)


def paper_rule(monitored, steps, every, tol, first):
    """The authors' loop (docs/model.md), on a recorded curve ``monitored[t]``."""
    t, keep_going, record = 0, True, first
    while t < steps or keep_going:
        if t % every == every - 1:
            if abs(monitored[t] - record) < tol:
                keep_going = False
            record = monitored[t]
        t += 1
    return t


@pytest.mark.parametrize("tol, later", [(1e-4, True), (0.5, False)])
def test_stopping_rule_end_to_end(tol, later):
    X, y = fa.make_data("teacher", N, D, width=P, activation="relu", seed=0)
    first, every = 100, 30
    res = fa.train(X, y, width=P, activation="relu", lr=0.02, lam=0.05, steps=first,
                   until_converged=True, check_every=every, tol=tol, seed=0)
    assert res.steps == paper_rule(res.loss, first, every, tol, 0.0)
    assert res.loss.shape == (res.steps + 1,) and res.record_steps[-1] == res.steps
    assert not res.capped
    if later:
        assert res.steps > first and res.steps % every == 0, res.steps
    else:
        assert res.steps == first


def test_stopping_rule_caps_at_max_steps():
    X, y = fa.make_data("teacher", N, D, width=P, activation="relu", seed=[0, 1])
    res = fa.train(X, y, width=P, activation="relu", lr=1e-4, steps=20,
                   until_converged=True, check_every=10, tol=1e-12, max_steps=60,
                   seed=[0, 1])
    assert np.all(res.steps == 60) and res.capped.all()
    plain = fa.train(X, y, width=P, activation="relu", lr=1e-4, steps=20, seed=[0, 1])
    assert not plain.capped.any()


def test_converge_on_alignment():
    X, y = fa.make_data("teacher", N, D, width=P, activation="relu", seed=0)
    first, every, tol = 50, 50, 0.03
    res = fa.train(X, y, width=P, activation="relu", lr=0.02, steps=first, dropout=0.5,
                   until_converged=True, converge_on="alignment", check_every=every,
                   tol=tol, seed=0, record_every=1)
    assert res.steps == paper_rule(res.alignment, first, every, tol, 1.0) > first


def test_dropout_changes_training_but_not_the_recorded_loss_definition():
    X, y = fa.make_data("teacher", N, D, width=P, activation="relu", seed=0)
    kw = dict(width=P, activation="relu", lr=0.02, steps=20, seed=0)
    plain = fa.train(X, y, **kw)
    dropped = fa.train(X, y, dropout=0.5, **kw)
    assert plain.loss[0] == dropped.loss[0]          # full network at step 0
    assert not np.allclose(plain.beta, dropped.beta)


def test_dtype_float32():
    X, y = fa.make_data("teacher", N, D, width=P, activation="relu", seed=0)
    kw = dict(width=P, activation="relu", lr=0.02, steps=200, seed=0)
    r32 = fa.train(X, y, dtype="float32", **kw)
    r64 = fa.train(X, y, **kw)
    assert r32.W.dtype == np.float32 and r64.W.dtype == np.float64
    np.testing.assert_allclose(r32.loss[:50], r64.loss[:50], rtol=1e-3)


def test_divergence_is_flagged_not_returned_as_data():
    X, y = fa.make_data("teacher", N, D, width=P, activation="relu", seed=[0, 1])
    with pytest.warns(fa.DivergenceWarning, match="lr"):
        res = fa.train(X, y, width=P, activation="relu", lr=50.0, steps=500, seed=[0, 1])
    assert res.diverged.all()
    for r in range(2):
        T = res.steps[r]
        assert T < 500
        assert np.all(np.isfinite(res.loss[r, :T]))
        assert np.all(np.isnan(res.loss[r, T + 1:]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ok = fa.train(X, y, width=P, activation="relu", lr=0.01, steps=50, seed=[0, 1])
    assert not ok.diverged.any()


GOOD = dict(width=P, activation="relu", rule="fa", lam=0.0, lr=0.01, steps=5, seed=0)


@pytest.mark.parametrize("name, value", [
    ("width", 0), ("width", -3), ("width", 2.5), ("steps", 0), ("lr", 0.0), ("lr", -1.0),
    ("lr", float("nan")), ("lam", -0.1), ("dropout", 1.0), ("dropout", -0.1),
    ("activation", "softplus"), ("rule", "dfa"), ("seed", -1), ("seed", []),
    ("record_every", 0), ("dtype", "float16"), ("method", "fast"),
    ("lam_schedule", "cosine"), ("lam_until", 10), ("lam_gamma", 0.5),
    ("converge_on", "accuracy"), ("tol", 0.0), ("until_converged", "yes"),
])
def test_bad_input_raises_naming_the_parameter(name, value, data):
    X, y = data
    with pytest.raises(ValueError, match=f"'{name}'"):
        fa.train(X, y, **{**GOOD, name: value})


def test_unknown_names_are_listed(data):
    X, y = data
    with pytest.raises(ValueError, match="'linear', 'relu', 'tanh', 'sigmoid'"):
        fa.train(X, y, **{**GOOD, "activation": "gelu"})
    with pytest.raises(ValueError, match="'fa', 'bp'"):
        fa.train(X, y, **{**GOOD, "rule": "backprop"})


def test_schedule_parameters_are_required(data):
    X, y = data
    with pytest.raises(ValueError, match="'lam_until'"):
        fa.train(X, y, **GOOD, lam_schedule="release")
    with pytest.raises(ValueError, match="'lam_gamma'"):
        fa.train(X, y, **GOOD, lam_schedule="decay", lam_gamma=1.5)


def test_bad_data_raises(data):
    X, y = data
    with pytest.raises(ValueError, match="'y'"):
        fa.train(X, y[:-1], **GOOD)
    Xbad = X.copy()
    Xbad[0, 0] = np.nan
    with pytest.raises(ValueError, match="'X'.*finite"):
        fa.train(Xbad, y, **GOOD)
    ybad = y.copy()
    ybad[1] = np.inf
    with pytest.raises(ValueError, match="'y'.*finite"):
        fa.train(X, ybad, **GOOD)
    with pytest.raises(ValueError, match="'X'.*real numbers.*complex"):
        fa.train(X + 1j, y, **GOOD)             # not silently cast to its real part
    with pytest.raises(ValueError, match=r"'X'.*one sample per row.*pass X\.T"):
        fa.train(X.T, y, **GOOD)
    with pytest.raises(ValueError, match=r"'y'.*a vector of .* targets.*pass y\.ravel\(\)"):
        fa.train(X, y[:, None], **GOOD)
    with pytest.raises(ValueError, match="'X'.*leading axis of 2"):
        fa.train(np.stack([X, X, X]), y, **{**GOOD, "seed": [0, 1]})
    with pytest.raises(ValueError, match="'X'"):
        fa.train(X[0], y, **GOOD)


def test_a_device_the_backend_lacks_is_named(data):
    X, y = data
    with pytest.raises(ValueError, match="^The 'device' parameter of train must be a device "
                                         "of numpy available here. Got 'cuda' instead"):
        fa.train(X, y, **GOOD, backend="numpy", device="cuda")


@pytest.mark.parametrize("kwargs, name", [
    (dict(kind="quadratic", n=5, d=5), "kind"), (dict(kind="linear", n=0, d=5), "n"),
    (dict(kind="linear", n=5, d=-1), "d"), (dict(kind="teacher", n=5, d=5), "width"),
    (dict(kind="teacher", n=5, d=5, width=3, activation="elu"), "activation"),
    (dict(kind="linear", n=5, d=5, seed="a"), "seed"),
    (dict(kind="linear", n=5, d=5, width=-5), "width"),          # checked though unused
    (dict(kind="linear", n=5, d=5, activation="bogus"), "activation"),
])
def test_make_data_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=f"'{name}'"):
        fa.make_data(**kwargs)


# --- The paper's claims, on small problems -------------------------------------------

@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_claim_fa_converges_exponentially_without_regularisation(dtype):
    X, y = fa.make_data("teacher", 20, 60, width=400, activation="relu", seed=[0, 1, 2])
    res = fa.train(X, y, width=400, activation="relu", rule="fa", lr=0.02, steps=1000,
                   seed=[0, 1, 2], dtype=dtype)
    drop = res.loss[:, 0] / res.loss[:, -1]
    assert np.all(drop > 1e6), drop
    # Exponential: after a short transient, log10(loss) falls by about the same amount in
    # every 200 steps (a power law would flatten out), until float32 round-off is near.
    per_block = -np.diff(np.log10(res.loss[:, 200:801:200]), axis=1)     # (R, 3)
    assert np.all(per_block > 1.0), per_block
    assert np.all(per_block.min(axis=1) > 0.5 * per_block.max(axis=1)), per_block


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_claim_regularisation_raises_alignment(dtype):
    seeds = list(range(4))
    X, y = fa.make_data("teacher", 20, 60, width=400, activation="relu", seed=seeds)
    kw = dict(width=400, activation="relu", rule="fa", lr=0.02, steps=3000, seed=seeds,
              dtype=dtype)
    free = fa.train(X, y, lam=0.0, **kw).final_alignment
    reg = fa.train(X, y, lam=0.1, **kw).final_alignment
    assert reg.mean() > free.mean() + 0.3, (reg, free)
    assert reg.min() > free.max()


def test_rowspace_needs_independent_rows_and_auto_falls_back():
    X, y = fa.make_data("teacher", N, D, width=P, activation="relu", seed=0)
    X = X.copy()
    X[1] = X[0]                                   # K = X X^T is singular
    y = y.copy()
    y[1] = y[0]
    with pytest.raises(ValueError, match="'method'"):
        fa.train(X, y, **{**GOOD, "method": "rowspace"})
    auto = fa.train(X, y, **GOOD)
    assert auto.config["method"] == "direct"
    assert fa.train(*fa.make_data("linear", N, D), **GOOD).config["method"] == "rowspace"


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("strided", [False, True])
def test_the_in_place_row_space_update_is_h_minus_k_m(dtype, strided):
    """``H[r] -= K[r] M[r]`` through BLAS, for contiguous stacks (updated in place) and
    strided ones (BLAS copies; the result is written back), with K shared or per replica."""
    from fa._kernels import _subtract_product

    rng = np.random.default_rng(0)
    for R_K in (1, 3):
        K = rng.standard_normal((R_K, 5, 5)).astype(dtype)
        M = rng.standard_normal((3, 5, 7)).astype(dtype)
        base = rng.standard_normal((3, 5, 14 if strided else 7)).astype(dtype)
        H = base[:, :, ::2] if strided else base
        expected = H - K @ M
        _subtract_product(H, K, M)
        np.testing.assert_allclose(H, expected, rtol=1e-5 if dtype == "float32" else 1e-12)


def test_cosine_refuses_vectors_of_different_shapes():
    with pytest.raises(ValueError, match="'b' parameter of cosine must have the shape"):
        fa.cosine(np.ones((3, 4)), np.ones(4))


def test_repeated_seeds_are_refused():
    X, y = fa.make_data("linear", 5, 8, seed=0)
    with pytest.raises(ValueError, match="'seed' parameter of train must be .*distinct"):
        fa.train(X, y, width=4, lr=1e-3, steps=2, seed=[0, 0])
