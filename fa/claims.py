"""The claims cell of every notebook: each expected property, measured and checked."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class Claim:
    """One expected property of a figure, measured on this run's data."""

    figure: str        # e.g. "F1 relu"
    claim: str         # the property in words
    measured: str      # the number(s) it was judged on
    holds: bool


def table(claims) -> pd.DataFrame:
    """The claims as a table with columns figure / claim / measured / holds."""
    return pd.DataFrame([c.__dict__ for c in claims],
                        columns=["figure", "claim", "measured", "holds"])


def check(claims) -> pd.DataFrame:
    """Return :func:`table` of ``claims``; raise AssertionError naming any that fail."""
    frame = table(claims)
    failed = frame[~frame["holds"]]
    if len(failed):
        lines = "\n".join(f"- {r.figure}: {r.claim} (measured: {r.measured})"
                          for r in failed.itertuples())
        raise AssertionError(f"{len(failed)} of {len(frame)} claims do not hold:\n{lines}")
    return frame
