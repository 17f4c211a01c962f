"""Every figure's claims hold on data with the expected shape and fail on data that
violates them: built by hand, so each test names the property it breaks."""

import warnings

import numpy as np
import pandas as pd
import pytest

from fa import settings
from fa.figures import alignment_dynamics, convergence, width_dependence

STEPS = np.arange(0, 1001, 10)


def tidied(frame, diverged=()):
    """``frame`` as a figure's tidy() returns it: saying which runs diverged."""
    frame.attrs["diverged"] = list(diverged)
    return frame


def f1_curves(free=lambda t: 10 ** (-t / 100), floors=(1e-3, 1e-2), bp=lambda t: 10 ** (-t / 80)):
    rows = []
    for seed in range(3):
        jitter = 1 + 0.01 * seed
        for rule, lam, curve in [("fa", 0.0, free), ("bp", 0.0, bp)] + [
                ("fa", lam, lambda t, f=f: f + 10 ** (-t / 100)) for lam, f in zip((0.1, 0.2), floors)]:
            rows += [dict(activation="relu", width=100, rule=rule, lam=lam, seed=seed, step=t,
                          loss=curve(t) * jitter) for t in STEPS]
    return tidied(pd.DataFrame(rows))


def test_f1_claims_hold_on_the_expected_shape():
    assert all(c.holds for c in convergence.claims(f1_curves()))


@pytest.mark.parametrize("data, broken", [
    (dict(free=lambda t: 1.0 + 0 * t), "FA, λ=0: loss falls"),                 # no convergence
    (dict(free=lambda t: 1 / (1 + t) ** 2), "FA, λ=0: exponential"),            # a power law
    (dict(floors=(1e-2, 1e-3)), "the floor rises with λ"),                        # floors inverted
    (dict(bp=lambda t: 1.0 + 0 * t), "BP, λ=0 converges too"),
])
def test_f1_claims_fail_on_violating_data(data, broken):
    failed = [c.claim for c in convergence.claims(f1_curves(**data)) if c.holds is False]
    assert any(c.startswith(broken) for c in failed), failed


def test_f1_names_the_worst_seed_which_the_mean_can_hide():
    curves = f1_curves()
    stuck = (curves["rule"] == "fa") & (curves["lam"] == 0) & (curves["seed"] == 2)
    curves.loc[stuck, "loss"] = 1.0
    claim = next(c for c in convergence.claims(curves) if "orders of magnitude" in c.claim)
    assert claim.measured.endswith("(worst seed 0.0)")


def test_f1_level_off_fails_when_a_regularised_loss_keeps_falling():
    curves = f1_curves()
    keep = (curves["lam"] == 0.2)
    curves.loc[keep, "loss"] = 10 ** (-curves.loc[keep, "step"] / 200)
    failed = [c.claim for c in convergence.claims(curves) if c.holds is False]
    assert any(c.startswith("FA, λ=0.2: loss levels off") for c in failed), failed


def f2_curves(final=(0.05, 0.3, 0.6), release_end=0.55, release_loss=1e-8, dropout=(0.05, 0.4)):
    s = settings("alignment_dynamics", "quick", steps=1000, n_seeds=2)
    t_rel = alignment_dynamics.release_step(s)
    rows = []
    for seed in range(2):
        def add(reg, strength, alignment, loss):
            rows.extend(dict(activation="relu", regularizer=reg, strength=strength, seed=seed,
                             step=t, alignment=alignment(t), loss=loss(t)) for t in STEPS)
        for lam, a in zip((0.0, 0.1, 0.2), final):
            add("l2", lam, lambda t, a=a: a * t / 1000, lambda t, lam=lam: 1e-4 + lam * 1e-2)
        add("release", 0.2, lambda t: min(t, t_rel) / t_rel * 0.6 if t <= t_rel else
            0.6 + (release_end - 0.6) * (t - t_rel) / (1000 - t_rel),
            lambda t: 2e-3 if t <= t_rel else release_loss)
        for q, a in zip((0.0, 0.5), dropout):
            add("dropout", q, lambda t, a=a: a * t / 1000, lambda t: 1e-3)
    return tidied(pd.DataFrame(rows)), s


def test_f2_claims_hold_on_the_expected_shape():
    curves, s = f2_curves()
    assert all(c.holds for c in alignment_dynamics.claims(curves, s))


@pytest.mark.parametrize("data, broken", [
    (dict(final=(0.3, 0.2, 0.6)), "final alignment rises with λ"),
    (dict(release_end=0.1), "release: alignment persists"),
    (dict(release_loss=1e-3), "release: loss then falls"),
    (dict(dropout=(0.4, 0.05)), "dropout raises alignment"),
])
def test_f2_claims_fail_on_violating_data(data, broken):
    curves, s = f2_curves(**data)
    failed = [c.claim for c in alignment_dynamics.claims(curves, s) if c.holds is False]
    assert failed and all(c.startswith(broken) for c in failed), failed


def f3_runs(free_slope=-0.5, lam_level=(0.3, 0.5), dropout=(0.05, 0.3)):
    rows = []
    for seed in range(3):
        for p in (200, 400, 800, 1600):
            def add(reg, strength, alignment):
                rows.append(dict(activation="relu", regularizer=reg, strength=strength, width=p,
                                 seed=seed, alignment=alignment * (1 + 0.01 * seed), loss=1e-3,
                                 steps=5000, capped=False))
            add("l2", 0.0, 0.2 * (p / 200) ** free_slope)
            for lam, level in zip((0.1, 0.2), lam_level):
                add("l2", lam, level)
            for q, level in zip((0.0, 0.5), dropout):
                add("dropout", q, level)
    return tidied(pd.DataFrame(rows))


def test_f3_claims_hold_on_the_expected_shape():
    assert all(c.holds for c in width_dependence.claims(f3_runs()))


@pytest.mark.parametrize("data, broken", [
    (dict(free_slope=0.2), "λ=0: alignment decays with p"),
    (dict(lam_level=(0.05, 0.5)), "λ=0.1: bounded away from 0"),
    (dict(lam_level=(0.5, 0.3)), "alignment rises with λ at every width"),
    (dict(dropout=(0.3, 0.05)), "at p=1600 the largest dropout rate"),
])
def test_f3_claims_fail_on_violating_data(data, broken):
    failed = [c.claim for c in width_dependence.claims(f3_runs(**data)) if c.holds is False]
    assert failed and any(c.startswith(broken) for c in failed), failed


def test_f3_order_in_lam_is_checked_at_every_width_not_only_the_largest():
    runs = f3_runs()
    crossed = (runs["width"] == 200) & (runs["strength"] == 0.2) & (runs["regularizer"] == "l2")
    runs.loc[crossed, "alignment"] = 0.2                 # below lam = 0.1's 0.3, at p = 200 only
    order = [c for c in width_dependence.claims(runs) if "rises with λ" in c.claim]
    assert len(order) == 1 and order[0].holds is False
    assert order[0].measured.startswith("3 of 4 widths")


def test_f3_fits_no_power_law_to_a_rule_whose_alignment_crosses_zero():
    """BP's cos(beta, b) hovers around 0: no slope (no log of a negative number), and its
    panel shows the values below 0 instead of cutting them off."""
    import matplotlib.pyplot as plt

    fa_runs = f3_runs().assign(rule="fa")
    bp_runs = fa_runs.assign(rule="bp", alignment=lambda r: 0.02 * np.cos(r["width"] + r["seed"]))
    runs = pd.concat([fa_runs, bp_runs], ignore_index=True)
    assert bp_runs["alignment"].min() < 0 < bp_runs["alignment"].max()
    with warnings.catch_warnings():
        warnings.simplefilter("error")                    # no RuntimeWarning from a log
        fits = width_dependence.slopes(runs)
        fig = width_dependence.plot(runs)
    assert list(fits["rule"]) == ["fa"]
    bp_panel = next(ax for ax in fig.axes if ax.get_title().startswith("ReLU · BP"))
    assert bp_panel.get_ylim()[0] < bp_runs["alignment"].min()
    plt.close(fig)
