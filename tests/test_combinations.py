"""Any reasonable combination of a figure's parameters runs, plots and checks its claims:
a lambda list without 0, no dropout row, a single width."""

import matplotlib.pyplot as plt
import pytest

import fa
from fa.figures import alignment_dynamics, convergence, width_dependence

TINY = dict(activations=["relu"], n_seeds=2, steps=300, n=20, d=40)


def sweep(configs, s):
    return fa.run_sweep(configs, range(s.n_seeds), cache_dir=None, progress=False)


def skipped(claims):
    return [c for c in claims if c.holds is None]


def test_f1_without_lambda_zero_skips_the_claims_that_need_it():
    s = fa.settings("convergence", "quick", lambdas=[0.05, 0.2], widths=[100], **TINY)
    curves = convergence.tidy(sweep(convergence.configs(s), s))
    fig = convergence.plot(curves)
    assert "geometric mean over 2 seeds" in fig._suptitle.get_text()     # says what it drew
    plt.close(fig)
    claims = convergence.claims(curves)
    assert [c.claim for c in skipped(claims)] == ["FA, λ=0: loss falls exponentially"]
    assert "no λ = 0 run" in skipped(claims)[0].measured
    assert fa.claims.table(claims).set_index("claim").loc[
        "FA, λ=0: loss falls exponentially", "holds"] == "skipped"


def test_f2_without_dropout_has_no_dropout_row():
    s = fa.settings("alignment_dynamics", "quick", dropout_rates=[], widths=[100], **TINY)
    configs = alignment_dynamics.configs(s)
    assert not any(c.dropout > 0 for c in configs)
    curves = alignment_dynamics.tidy(sweep(configs, s))
    fig = alignment_dynamics.plot(curves, s)
    assert len(fig.axes) == 3          # L2, release alignment, release loss
    assert "mean ± sd over 2 seeds" in fig._suptitle.get_text()
    plt.close(fig)
    assert all(c.holds is not None for c in alignment_dynamics.claims(curves, s))


def test_f2_with_lambda_zero_only_has_no_release():
    s = fa.settings("alignment_dynamics", "quick", lambdas=[0.0], dropout_rates=[],
                    widths=[100], **TINY)
    configs = alignment_dynamics.configs(s)
    assert {c.lam_schedule for c in configs} == {"constant"}     # nothing to release
    curves = alignment_dynamics.tidy(sweep(configs, s))
    plt.close(alignment_dynamics.plot(curves, s))
    assert len(skipped(alignment_dynamics.claims(curves, s))) == 2


@pytest.mark.parametrize("lambdas", [[0.0, 0.2], [0.05, 0.2]])
def test_f3_single_width_says_there_is_no_slope(lambdas):
    s = fa.settings("width_dependence", "quick", widths=[100], lambdas=lambdas,
                    dropout_rates=[], **TINY)
    runs = width_dependence.tidy(sweep(width_dependence.configs(s), s))
    assert width_dependence.slopes(runs).empty
    fig = width_dependence.plot(runs)
    assert len(fig.axes) == 1          # no dropout row
    assert "mean ± sd over 2 seeds" in fig._suptitle.get_text()
    plt.close(fig)
    why = [c.measured for c in skipped(width_dependence.claims(runs, strict=False))]
    assert why == ["skipped: " + ("a single width: no slope to fit" if 0.0 in lambdas
                                  else "needs λ = 0 in lambdas")]


def test_claims_are_shown_in_full(capsys):
    long = "λ=0.5: bounded away from 0 (min over p ≥ 0.1; at p=12800 ≥ 1.5x λ=0) " * 2
    fa.claims.show([fa.claims.Claim("F3 relu", long, "7 of 7 widths; " + "0.123, " * 8, True)])
    shown = capsys.readouterr().out
    assert long.strip() in shown and "0.123, " * 8 in shown     # pandas alone cuts at 50


def test_claims_check_ignores_skipped_but_fails_on_a_false_claim():
    ok = fa.claims.Claim("F", "holds", "1", True)
    skip = fa.claims.Claim.skipped("F", "needs λ=0", "no λ = 0 run")
    assert len(fa.claims.check([ok, skip])) == 2
    with pytest.raises(AssertionError, match="1 of 3 claims do not hold"):
        fa.claims.check([ok, skip, fa.claims.Claim("F", "broken", "0", False)])


def test_a_run_off_the_protocol_lists_its_false_claims_and_goes_on(capsys):
    broken = fa.claims.Claim("F", "broken", "0", False)
    assert len(fa.claims.check([broken], changed=["activation"])) == 1
    assert "1 of 1 claims do not hold:\n- F: broken (measured: 0)\nThey are the paper's claims " \
           "for the scale's protocol, and this run changed activation" in capsys.readouterr().out


@pytest.mark.parametrize("notebook, given, changed", [
    ("05_mechanisms", dict(activation="relu", widths=None), []),          # the default's value
    ("05_mechanisms", dict(activation="linear", widths=[50, 200]), ["widths", "activation"]),
    ("01_convergence", dict(widths=[20], rules=["fa", "bp"], n_seeds=9), ["widths"]),
    ("03_width_dependence", dict(scale="paper", n_seeds=10), []),        # the gallery's F3
    ("03_width_dependence", dict(widths=[100], backend="numpy"), ["widths"]),
    ("01_convergence", dict(rerun=False, widths=[20]), []),              # a redraw trains nothing
])
def test_a_run_leaves_the_protocol_by_the_parameters_that_change_its_runs(notebook, given,
                                                                          changed):
    assert fa.notebook.changed({"scale": "quick", **given}, notebook) == changed


def test_parameters_valid_only_together_are_named_together(tmp_path):
    from fa.mnist_files import IDX_FILES

    for stem in IDX_FILES.values():          # other data than the subset (files not read)
        (tmp_path / stem).write_bytes(stem.encode())
    given = {"scale": "quick", "subset": False, "data_dir": str(tmp_path)}
    assert fa.notebook.changed(given, "04_mnist") == ["subset", "data_dir"]


@pytest.mark.parametrize("figure", ["convergence", "alignment_dynamics"])
def test_f1_f2_draw_one_width_and_say_where_widths_are_compared(figure):
    """Their figure, summary and claims average over seeds: several widths would be
    averaged together without a word."""
    with pytest.raises(ValueError, match=r"'widths' parameter of 0[12]_\w+ must be a list of "
                                         r"one width .* notebook 03\)\. Got \[200, 800\]"):
        fa.settings(figure, "quick", widths=[200, 800])
    assert fa.settings("width_dependence", "quick", widths=[200, 800]).widths == (200, 800)


@pytest.mark.parametrize("rules, got", [
    ([], r"\[\]"), (["bp"], r"\['bp'\]"), (["fa", "fa"], r"\['fa', 'fa'\]"),
    (["fa", "FA"], r"\['fa', 'FA'\]"), ("fa", "a list of strs")])
def test_a_wrong_rules_list_is_named_before_anything_runs(rules, got):
    s = fa.settings("convergence", "quick", **TINY)
    for module in (convergence, alignment_dynamics, width_dependence):
        with pytest.raises(ValueError, match=r"The 'rules' parameter of 0[123]_\w+ must be"):
            module.configs(s, rules=rules)
    with pytest.raises(ValueError, match=got):
        convergence.configs(s, rules=rules)
    assert {c.rule for c in convergence.configs(s, rules=["bp", "fa"])} == {"fa", "bp"}


@pytest.mark.parametrize("figure", [convergence, alignment_dynamics, width_dependence],
                         ids=lambda m: m.NAME)
def test_diverged_runs_are_named_and_left_out_of_figure_tables_and_claims(figure, capsys):
    """A lambda so large that eta * lambda > 2 blows up: its runs are no result to draw
    or judge (a 'levels off' claim held on a loss of 1e9), and the reader is told."""
    s = fa.settings(figure.NAME, "quick", lambdas=[0.0, 0.05, 500.0], widths=[100],
                    dropout_rates=[], **TINY)
    with pytest.warns(fa.DivergenceWarning):
        result = sweep(figure.configs(s), s)
    table = figure.tidy(result)
    out = capsys.readouterr().out
    assert out.startswith("Diverged, left out of the figure, its tables and claims: ")
    assert "lam=500.0" in out and "2 of 2 seeds" in out
    lam = table["lam"] if "lam" in table else table["strength"][table["regularizer"] == "l2"]
    assert 500.0 not in set(lam) and {0.0, 0.05} <= set(lam)
    plt.close(figure.plot(table) if figure is convergence else figure.plot(table, s)
              if figure is alignment_dynamics else figure.plot(table))
    claims = figure.claims(table) if figure is not alignment_dynamics else \
        figure.claims(table, s)
    first = claims[0]
    assert first.claim == "every run trained to its end (none diverged)"
    assert first.holds is False and "lam=500.0" in first.measured and \
        "2 of 2 seeds" in first.measured
    assert not [c for c in claims[1:] if "500" in c.claim]


def test_a_sweep_whose_every_run_diverged_has_nothing_to_draw(tmp_path):
    s = fa.settings("convergence", "quick", lambdas=[500.0], widths=[100], **TINY)
    with pytest.warns(fa.DivergenceWarning):
        result = sweep(convergence.configs(s, rules=["fa"]), s)
    with pytest.raises(RuntimeError, match=r"Every one of the 2 runs diverged \(.*lam=500\.0.*"
                                           r"\): there is nothing to draw\. Lower lr"):
        convergence.tidy(result, tmp_path)
    assert not (tmp_path / "convergence.csv").exists()       # no empty table left behind


@pytest.mark.parametrize("activations, lambdas, steps, gone", [
    # ReLU's release runs diverge too (eta lam = 5), linear's not (0.5): a release row
    # with no ReLU data in it
    (["linear", "relu"], [0.0, 500.0], 300, "release"),
    # released at step 10, before the constant run blows up
    (["relu"], [0.0, 205.0], 20, "constant"),
])
def test_f2_draws_and_judges_what_is_left_when_some_runs_diverge(activations, lambdas, steps,
                                                                 gone, capsys):
    s = fa.settings("alignment_dynamics", "quick", activations=activations, lambdas=lambdas,
                    widths=[100], n_seeds=2, steps=steps, dropout_rates=[])
    with pytest.warns(fa.DivergenceWarning):
        result = sweep(alignment_dynamics.configs(s), s)
    curves = alignment_dynamics.tidy(result)
    assert "Diverged" in capsys.readouterr().out
    plt.close(alignment_dynamics.plot(curves, s))
    claims = alignment_dynamics.claims(curves, s)
    assert claims[0].holds is False
    if gone == "constant":
        assert "no constant-λ run to compare (it diverged)" in \
            [c.measured.removeprefix("skipped: ") for c in skipped(claims)]
