"""The authors' numbers beside ours (fa.authors): the cell-by-cell F3 comparison and its
claim, F4's final values, and the overlays, on small hand-made runs and on the gallery."""

import math

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

import fa
from fa import authors
from fa.figures import mnist as mnist_figure, width_dependence

THEIRS = authors.load("f3_l2_final_alignment")


def their(activation, lam, width):
    row = THEIRS[(THEIRS["activation"] == activation) & np.isclose(THEIRS["lam"], lam)
                 & (THEIRS["width"] == width)]
    return row.iloc[0]


def runs(cells):
    """Tidy F3 runs: ``cells`` maps (activation, regularizer, strength, width) -> the
    final alignments of its seeds."""
    rows = [dict(activation=a, regularizer=r, strength=q, width=p, alignment=x, loss=0.0,
                 steps=1, capped=False, seed=i)
            for (a, r, q, p), values in cells.items() for i, x in enumerate(values)]
    return pd.DataFrame(rows)


def test_f3_cells_are_matched_and_z_is_computed_from_both_standard_errors():
    near = their("relu", 0.02, 200)
    ours = [near["mean"] - 0.01, near["mean"] + 0.03]
    table = authors.compare_f3(runs({("relu", "l2", 0.02, 200): ours,
                                     ("relu", "l2", 0.02, 100): [0.5, 0.5],     # not theirs
                                     ("relu", "dropout", 0.4, 200): [0.8, 0.8]}))
    assert len(table) == 1 and table.attrs["ours_only"] == 1
    assert table.attrs["theirs_only"] == len(THEIRS) - 1
    row = table.iloc[0]
    se_ours = np.std(ours, ddof=1) / math.sqrt(2)
    se_theirs = near["std"] / math.sqrt(near["count"])
    assert row["ours_n"] == 2 and row["theirs_n"] == near["count"]
    assert row["diff"] == pytest.approx(0.01)
    assert row["z"] == pytest.approx(0.01 / math.hypot(se_ours, se_theirs))
    assert row["agree"]


def test_only_fa_runs_are_compared_with_the_authors_fa_runs():
    near = their("relu", 0.02, 200)
    fa_runs = runs({("relu", "l2", 0.02, 200): [near["mean"]] * 2})
    bp_runs = runs({("relu", "l2", 0.02, 200): [0.9, 0.9]}).assign(rule="bp")
    alone = authors.compare_f3(fa_runs.assign(rule="fa"))
    pd.testing.assert_frame_equal(authors.compare_f3(pd.concat([fa_runs.assign(rule="fa"), bp_runs])),
                                  alone)
    assert alone["ours_n"].tolist() == [2]


def test_a_cell_outside_both_the_floor_and_three_standard_errors_disagrees():
    near = their("tanh", 0.0, 3200)
    far = near["mean"] + authors.TOLERANCE + 0.01
    table = authors.compare_f3(runs({("tanh", "l2", 0.0, 3200): [far] * 10}))
    assert not table["agree"].iloc[0]
    assert abs(table["z"].iloc[0]) > authors.Z_MAX


def test_the_claim_counts_agreeing_cells_and_is_skipped_off_protocol():
    cells = {("linear", "l2", lam, p): [their("linear", lam, p)["mean"]] * 3
             for lam in (0.0, 0.2, 0.3, 0.5) for p in (200, 400, 800)}      # 12 cells agree
    table = authors.compare_f3(runs(cells))
    assert authors.claim_f3(table).holds is True
    cells[("linear", "l2", 0.5, 800)] = [0.0] * 3                          # 11 of 12: 92%
    assert authors.claim_f3(authors.compare_f3(runs(cells))).holds is True
    cells[("linear", "l2", 0.5, 400)] = [0.0] * 3                          # 10 of 12: 83%
    claim = authors.claim_f3(authors.compare_f3(runs(cells)))
    assert claim.holds is False and claim.measured.startswith("10 of 12 cells")
    assert authors.claim_f3(table, strict=False).holds is None
    assert authors.claim_f3(table.iloc[:0]).holds is None


def test_the_f3_overlay_draws_one_hollow_marker_per_matched_cell():
    cells = {("relu", reg, q, p): [0.3, 0.4] for reg, q in (("l2", 0.0), ("l2", 0.2),
                                                           ("dropout", 0.4))
             for p in (200, 800, 100)}
    r = runs(cells)
    tables = {reg: authors.compare_f3(r, reg) for reg in ("l2", "dropout")}
    fig = authors.overlay_f3(width_dependence.plot(r), tables)
    hollow = [line for ax in fig.axes for line in ax.get_lines() if line.get_mfc() == "none"]
    assert sum(len(line.get_xdata()) for line in hollow) == 6          # 3 lines x 2 widths
    assert "the authors' means" in fig.get_suptitle()


def mnist_frame(steps=(0, 1000, 2000), lams=(0.0, 0.3)):
    """A tidy F4 frame: FA at ``lams`` and BP, two seeds, one hidden layer."""
    rows = [dict(depth=1, rule=rule, lam=lam, seed=seed, step=t, layer=1,
                 weight_alignment=0.1, signal_alignment=lam + 0.01 * seed + t / 1e5,
                 test_accuracy=0.8 + 0.01 * seed, test_loss=1.0, diverged=False,
                 source="test data")
            for rule, lam in [("fa", lam) for lam in lams] + [("bp", 0.0)]
            for seed in (0, 1) for t in steps]
    return pd.DataFrame(rows)


def test_f4_final_values_sit_beside_theirs_at_the_same_step():
    table = authors.compare_f4(mnist_frame(steps=(0, 1000, 2500)))
    theirs = authors.load("f4_one_hidden_layer_curves")
    assert list(table["lam"]) == [0.0, 0.3]
    assert set(table["step"]) == {2500} and set(table["their_step"]) == {2000}
    row = table.set_index("lam").loc[0.3]
    assert row["ours_alignment"] == pytest.approx(0.3 + 0.005 + 0.025)
    assert row["ours_accuracy"] == pytest.approx(0.805)
    at = theirs[(theirs["step"] == 2000) & np.isclose(theirs["lam"], 0.3)].iloc[0]
    assert row["theirs_alignment"] == at["signal_alignment"]
    assert row["theirs_accuracy"] == at["test_accuracy"]


def test_the_f4_overlay_draws_their_curves_within_our_steps_on_the_one_layer_panels():
    fig = authors.overlay_f4(mnist_figure.plot(mnist_frame()))
    hollow = {ax.get_title(): [line for line in ax.get_lines() if line.get_mfc() == "none"]
              for ax in fig.axes}
    drawn = {title: sum(len(line.get_xdata()) for line in lines)
             for title, lines in hollow.items()}
    assert drawn == {"(a) error-signal alignment, 1 hidden layer": 4,   # 2 lams x 2 steps
                     "(b) weight alignment, 1 hidden layer": 0,
                     "(c) test accuracy, 1 hidden layer": 4}


def test_the_committed_f3_agrees_with_the_authors():
    sweep, _ = fa.gallery.load("width_dependence")
    table = authors.compare_f3(width_dependence.tidy(sweep))
    assert authors.claim_f3(table).holds is True
