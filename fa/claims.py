"""The claims cell of every notebook: each expected property, measured and checked."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class Claim:
    """One expected property of a figure, measured on this run's data.

    ``holds`` is None when the run cannot test the claim (e.g. no lambda = 0 run
    to compare with); ``measured`` then says why.
    """

    figure: str          # e.g. "F1 relu"
    claim: str           # the property in words
    measured: str        # the number(s) it was judged on, or why it was skipped
    holds: bool | None

    @classmethod
    def skipped(cls, figure: str, claim: str, why: str) -> "Claim":
        """A claim this run's settings cannot test, with the reason."""
        return cls(figure, claim, f"skipped: {why}", None)


def table(claims) -> pd.DataFrame:
    """The claims as a table with columns figure / claim / measured / holds.

    ``holds`` reads "yes", "NO" or "skipped".
    """
    frame = pd.DataFrame([c.__dict__ for c in claims],
                         columns=["figure", "claim", "measured", "holds"])
    frame["holds"] = frame["holds"].map({True: "yes", False: "NO", None: "skipped"})
    return frame


def show(claims) -> None:
    """Display :func:`table` of ``claims`` in a notebook with every claim and number in
    full (pandas cuts text at 50 characters, and a plain-text table at the screen's width)."""
    from IPython.display import display
    with pd.option_context("display.max_colwidth", None, "display.max_columns", None,
                           "display.width", None):
        display(table(claims))


def check(claims, changed=()) -> pd.DataFrame:
    """Return :func:`table` of ``claims``; raise AssertionError naming any that fail.

    Skipped claims are listed but do not fail the check. ``changed`` names the parameters
    by which the run left its scale's protocol (:func:`fa.notebook.changed`): the claims
    are the paper's, for that protocol, so there a failing claim is printed as what the
    run found, and the notebook goes on.
    """
    claims = list(claims)
    frame = table(claims)
    failed = [c for c in claims if c.holds is False]
    if failed:
        lines = "\n".join(f"- {c.figure}: {c.claim} (measured: {c.measured})" for c in failed)
        message = f"{len(failed)} of {len(claims)} claims do not hold:\n{lines}"
        if not changed:
            raise AssertionError(message)
        print(f"{message}\nThey are the paper's claims for the scale's protocol, and this run "
              f"changed {', '.join(changed)}: here they are findings, not errors.")
    return frame
