"""fa.cosine pairs vectors of one shape and refuses others rather than broadcasting."""

import numpy as np
import pytest

import fa


def test_cosine_pairs_vectors_of_one_shape_and_refuses_others():
    rng = np.random.default_rng(0)
    beta, b = rng.standard_normal((2, 3, 4))
    np.testing.assert_allclose(fa.cosine(beta, b),
                               [u @ v / np.sqrt(u @ u * (v @ v)) for u, v in zip(beta, b)])
    with pytest.raises(ValueError, match=r"The 'b' parameter of cosine must have the shape "
                                         r"of beta, \(3, 4\). Got an array of shape \(4,\)"):
        fa.cosine(beta, b[0])
