"""One ``threads`` check for the face networks' sessions and the generator's."""

from __future__ import annotations

import numpy as np
import pytest

from kfaar._threads import check_threads
from kfaar.faces import SFaceEncoder
from kfaar.runtime.engine import OrtEngineOptions


@pytest.mark.parametrize("good, expected", [(None, None), (1, 1), (8, 8), (np.int64(2), 2), (np.uint8(3), 3)])
def test_whole_numbers_from_one_are_ints(good, expected):
    got = check_threads(good)
    assert got == expected and (got is None or type(got) is int)


@pytest.mark.parametrize("bad", [0, -1, True, False, 1.0, 1.5, "2", np.float32(2), np.int64(0)])
def test_anything_else_is_refused_by_name(bad):
    with pytest.raises(ValueError, match=r"threads: got .*, expected None or an int >= 1"):
        check_threads(bad)


def test_the_encoder_and_the_engine_options_use_it():
    with pytest.raises(ValueError, match="threads"):  # True read as one thread before
        SFaceEncoder(threads=True)
    assert type(OrtEngineOptions(threads=np.int64(2)).threads) is int  # refused before
    with pytest.raises(ValueError, match="threads"):
        OrtEngineOptions(threads=np.float64(2))
