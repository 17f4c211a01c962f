"""The constraints table: every invalid value it describes is refused, naming the parameter."""

import numpy as np
import pytest

import fa
from fa import constraints
from fa.constraints import (CONSTRAINTS, ONLY_WITH, Boolean, Dtype, Interval, Options, Seeds,
                            Text, validate)

X, Y = fa.make_data("teacher", 8, 20, width=5, activation="relu", seed=0)
GOOD = dict(width=5, activation="relu", rule="fa", lam=0.0, lr=0.01, steps=5, seed=0,
            record_every=1, lam_schedule="constant", lam_until=None, lam_gamma=None,
            dropout=0.0, until_converged=False, check_every=10, tol=1e-3,
            converge_on="loss", max_steps=None, dtype="float64", method="auto",
            memory_budget=2**20, backend=None, device=None)
TRAIN_PARAMS = [name for name in CONSTRAINTS if name in GOOD]


def examples(c, params) -> list:
    """Values outside the constraint ``c`` (and of the wrong type), read off its data."""
    if isinstance(c, Interval):
        low, high = c._bounds(params)
        out = ["1", float("nan")] + ([2.5] if c.kind is int else [])
        if low is not None:
            out += [c.kind(low) - 1] + ([c.kind(low)] if c.closed in ("right", "neither") else [])
        if high is not None:
            out += [c.kind(high) + 1] + ([c.kind(high)] if c.closed in ("left", "neither") else [])
        return out
    return {Dtype: ["float16", np.int32, "x"], Options: ["not-an-option", 1],
            Boolean: ["yes", 1], Text: [1],
            Seeds: [-1, [], [0, -1], [0, 0], "0", True]}[type(c)]


def invalid_examples(name: str, params: dict) -> list:
    """Values of ``name`` that :func:`validate` refuses given the other ``params``."""
    allowed = CONSTRAINTS[name]
    candidates = [None] + [x for c in allowed if c is not None for x in examples(c, params)]
    other = ONLY_WITH.get(name)
    if other and params.get(other[0]) != other[1]:
        candidates.append(examples(allowed[0], params)[-1])
    out = []
    for x in candidates:
        try:
            validate({**params, name: x}, "test")
        except ValueError:
            out.append(x)
    return out


def cases():
    out = []
    for name in TRAIN_PARAMS:
        out += [(name, GOOD, v) for v in invalid_examples(name, GOOD)]
    for name, schedule in constraints.ONLY_WITH.items():    # required by their schedule
        base = dict(GOOD, **{schedule[0]: schedule[1]})
        out += [(name, base, v) for v in invalid_examples(name, base)]
    return out


def test_every_train_parameter_is_in_the_table_and_has_invalid_values():
    assert set(GOOD) == set(TRAIN_PARAMS)
    for name in TRAIN_PARAMS:
        if name != "device":
            assert invalid_examples(name, GOOD) or name in ("lam_until", "lam_gamma"), name


@pytest.mark.parametrize("name, base, value", cases(), ids=lambda x: repr(x)[:30])
def test_train_refuses_every_invalid_value_naming_the_parameter(name, base, value):
    with pytest.raises(ValueError, match=f"^The '{name}' parameter of train "):
        fa.train(X, Y, **{**base, name: value})


def test_a_parameter_that_needs_another_is_refused_without_it():
    with pytest.raises(ValueError, match="^The 'max_steps' parameter of train is only used "
                                         "with until_converged set. Got max_steps=50 with "
                                         "until_converged=False instead.$"):
        fa.train(X, Y, **dict(GOOD, max_steps=50))
    with pytest.raises(ValueError, match="^The 'device' parameter of train is only used with "
                                         "backend set"):
        fa.train(X, Y, **dict(GOOD, device="cpu"))
    assert fa.train(X, Y, **dict(GOOD, until_converged=True, max_steps=50)).steps <= 50


def test_validate_normalises_numbers():
    out = validate(dict(width=np.int64(5), lr=1, lam=np.float32(0.5), seed=(1, 2),
                        until_converged=np.bool_(True), dtype=np.float32,
                        steps=5, max_steps=np.int32(7)), "f")
    assert out == dict(width=5, lr=1.0, lam=0.5, seed=[1, 2], until_converged=True,
                       dtype="float32", steps=5, max_steps=7)
    assert type(out["width"]) is int and type(out["lr"]) is float


def test_one_message_form_and_bounds_naming_other_parameters():
    with pytest.raises(ValueError, match=r"^The 'lam' parameter of g must be a finite float "
                                         r"in the range \[0.0, inf\). Got -1.0 instead.$"):
        validate(dict(lam=-1.0), "g")
    with pytest.raises(ValueError, match=r"'max_steps' parameter of g must be an int >= 8 or "
                                         r"None. Got 7 instead"):
        validate(dict(steps=8, max_steps=7), "g")
    with pytest.raises(ValueError, match="'lam_until' parameter of g is only used with "
                                         "lam_schedule='release'"):
        validate(dict(lam_schedule="constant", lam_until=3), "g")
    with pytest.raises(ValueError, match="'lam_gamma' parameter of g must be a finite float"):
        validate(dict(lam_schedule="decay"), "g")
    with pytest.raises(ValueError, match="knows no parameter 'colour'"):
        validate(dict(colour="red"), "g")


def test_intervals_describe_themselves():
    assert Interval(int, 1).describe({}) == "an int >= 1"
    assert Interval(int, 0, 3, closed="left").describe({}) == "an int in the range [0, 2]"
    assert Interval(float, 0.0, 1.0, closed="right").describe({}) == \
        "a finite float in the range (0.0, 1.0]"
    assert constraints.check("width", 3, "h") == 3
