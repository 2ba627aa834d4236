import numpy as np
import pytest

from kfaar.faces.align import CANONICAL_TEMPLATE, nose_offset


def test_nose_offset_is_zero_on_the_template_and_follows_the_nose():
    lm = np.repeat(np.asarray(CANONICAL_TEMPLATE, np.float32)[None], 3, 0)
    base = nose_offset(lm[:1])[0]
    assert abs(base) < 1.5  # the ArcFace template's nose sits near its midline
    lm[1, 2, 0] += 4.0
    lm[2, :, 0] += 10.0  # a sideways shift of the whole face is no turn
    np.testing.assert_allclose(nose_offset(lm), [base, base + 4.0, base], atol=1e-5)
    assert nose_offset(lm).dtype == np.float32


def test_nose_offset_checks_its_shape():
    with pytest.raises(ValueError, match=r"\(N, 5, 2\)"):
        nose_offset(np.zeros((5, 2)))
