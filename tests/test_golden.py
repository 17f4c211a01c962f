"""The trainers still compute the recorded golden numbers (see tests/golden.py)."""

import numpy as np
import pytest

import golden

RECORDED = np.load(golden.GOLDEN)


def _compare(name, got):
    for key, value in got.items():
        want = RECORDED[f"{name}/{key}"]
        assert value.shape == want.shape, f"{name}/{key}: shape {value.shape} != {want.shape}"
        yield key, np.asarray(value, dtype=np.float64), want


@pytest.mark.parametrize("name", sorted(golden.two_layer_cases()))
def test_two_layer_keeps_its_golden_numbers(name):
    case = golden.two_layer_cases()[name]
    rtol = 1e-4 if case.get("dtype") == "float32" else 1e-9
    for key, got, want in _compare(name, golden.two_layer(case)):
        # Relative to each replica's own scale, so a loss near round-off is not
        # held to digits it never had.
        scale = np.nanmax(np.abs(want), axis=-1, keepdims=True) if want.ndim else abs(want)
        off = np.abs(got - want) > rtol * (np.abs(want) + scale)
        off |= np.isnan(got) != np.isnan(want)       # NaN pads a replica that stopped early
        assert not off.any(), (f"{name}/{key}: {off.sum()} of {off.size} values moved, "
                               f"e.g. {got[off][:3]} instead of {want[off][:3]}")


@pytest.mark.parametrize("name", sorted(golden.deep_cases()))
def test_deep_keeps_its_golden_numbers(name):
    for key, got, want in _compare(name, golden.deep(golden.deep_cases()[name])):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=f"{name}/{key}")


def test_golden_cases_are_all_recorded():
    names = {k.split("/")[0] for k in RECORDED.files}
    assert names == set(golden.two_layer_cases()) | set(golden.deep_cases())
