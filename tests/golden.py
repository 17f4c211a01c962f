"""The golden numbers: what the trainers compute, recorded once, kept by every refactor.

``tests/test_golden.py`` recomputes every case below and compares it with
``tests/data/golden.npz``: the two-layer trainer in float64 within 1e-9 relative, the
deep trainer in float32 within 1e-4. The file was recorded from the code before the
package was restructured; recording it again is a deliberate act whose commit must say
which numbers moved and why::

    python tests/golden.py          # rewrites tests/data/golden.npz

The cases are small (n = 20, d = 30, p = 48, 150 steps, two stacked seeds) so the whole
comparison takes seconds, and they cover every path a figure takes: each activation,
both rules, plain gradient descent, constant L2, L2 released, L2 decayed, dropout, the
authors' stopping rule on the loss and on the alignment, float32, and the deep trainer
at one and two hidden layers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import fa

GOLDEN = Path(__file__).with_name("data") / "golden.npz"

N, D, P, STEPS, SEEDS = 20, 30, 48, 150, [3, 4]
# The paper's step size and a middling L2 strength per activation (its table of F1-F3).
ETA = {"linear": 1e-3, "relu": 1e-2, "tanh": 1e-1, "sigmoid": 1e-1}
LAM = {"linear": 0.3, "relu": 0.05, "tanh": 0.002, "sigmoid": 0.003}
MODES = {
    "plain": lambda a: {},
    "l2": lambda a: {"lam": LAM[a]},
    "l2_released": lambda a: {"lam": LAM[a], "lam_schedule": "release", "lam_until": 60},
    "l2_decayed": lambda a: {"lam": LAM[a], "lam_schedule": "decay", "lam_gamma": 0.99},
    "dropout": lambda a: {"dropout": 0.3},
}
# Tolerances of the stopping rule at which, in these short runs, some replicas stop by
# the rule after T, some at T and some at the cap: every branch of the rule is taken.
TOL_LOSS = {"linear": 1.0, "relu": 0.1, "tanh": 0.1, "sigmoid": 1e-2}
TOL_ALIGNMENT = {"linear": 1e-2, "relu": 3e-2, "tanh": 3e-2, "sigmoid": 1e-2}


def two_layer_cases() -> dict[str, dict]:
    """Every keyword set of :func:`fa.train` the golden file holds, by name."""
    cases = {}
    for a in ("linear", "relu", "tanh", "sigmoid"):
        for rule in ("fa", "bp"):
            for mode, extra in MODES.items():
                cases[f"{a}-{rule}-{mode}"] = dict(activation=a, rule=rule, lr=ETA[a],
                                                   steps=STEPS, **extra(a))
        # The authors' stopping rule, on the loss and (with dropout) on the alignment,
        # with checks every 40 steps so it acts within a short run.
        cases[f"{a}-fa-until_loss"] = dict(activation=a, rule="fa", lr=ETA[a], steps=80,
                                           lam=LAM[a], until_converged=True, check_every=40,
                                           tol=TOL_LOSS[a], max_steps=400)
        cases[f"{a}-fa-until_alignment"] = dict(activation=a, rule="fa", lr=ETA[a], steps=80,
                                                dropout=0.3, until_converged=True,
                                                check_every=40, tol=TOL_ALIGNMENT[a],
                                                converge_on="alignment", max_steps=400)
        cases[f"{a}-fa-float32"] = dict(activation=a, rule="fa", lr=ETA[a], steps=STEPS,
                                        lam=LAM[a], dtype="float32")
    return cases


def two_layer(case: dict) -> dict[str, np.ndarray]:
    """Train one case on its seeds' own data; the numbers the golden file keeps."""
    a = case["activation"]
    kind = "linear" if a == "linear" else "teacher"
    X, y = fa.make_data(kind, N, D, width=P, activation=a, seed=SEEDS)
    res = fa.train(X, y, width=P, seed=SEEDS, record_every=10, **case)
    return {"loss": res.loss, "alignment": res.alignment, "steps": np.asarray(res.steps),
            "record_steps": res.record_steps, "beta": res.beta}


def deep_cases() -> dict[str, dict]:
    """Every keyword set of :func:`fa.train_deep` the golden file holds, by name."""
    return {f"deep{len(h)}-{rule}": dict(hidden=h, rule=rule, lam=0.1)
            for h in ((32,), (32, 24)) for rule in ("fa", "bp")}


def deep_data():
    """A small synthetic 10-class problem with MNIST's input size (no download)."""
    rng = np.random.default_rng(11)
    X = rng.standard_normal((260, 784))
    y = rng.integers(0, 10, 260)
    return X[:200], y[:200], X[200:], y[200:]


def deep(case: dict) -> dict[str, np.ndarray]:
    """Train one deep case in float32; the recorded history the golden file keeps."""
    res = fa.train_deep(deep_data(), lr=0.05, batch_size=40, steps=60, seed=5,
                        record_every=10, dtype="float32", **case)
    return {"test_accuracy": res.test_accuracy, "test_loss": res.test_loss,
            "train_loss": res.train_loss, "weight_alignment": res.weight_alignment,
            "signal_alignment": res.signal_alignment}


def compute() -> dict[str, np.ndarray]:
    """Every golden array, keyed ``case/quantity``."""
    out = {}
    for name, case in two_layer_cases().items():
        out.update({f"{name}/{k}": v for k, v in two_layer(case).items()})
    for name, case in deep_cases().items():
        out.update({f"{name}/{k}": v for k, v in deep(case).items()})
    return out


if __name__ == "__main__":
    GOLDEN.parent.mkdir(exist_ok=True)
    arrays = compute()
    np.savez_compressed(GOLDEN, **arrays)
    print(f"wrote {len(arrays)} arrays to {GOLDEN}")
