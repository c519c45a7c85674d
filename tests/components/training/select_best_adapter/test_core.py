import pytest

from kfp_llmops.components.training.select_best_adapter.core import best_index
from kfp_llmops.errors import UserInputError


def test_lowest_finite_loss_wins_and_floats_from_kfp_local_are_fine():
    assert best_index([0.9, 0.3, 0.31]) == 1
    assert best_index([float("nan"), 2.0, None, 1.5]) == 3


def test_all_diverged_is_an_error():
    with pytest.raises(UserInputError, match="every sweep run diverged"):
        best_index([float("nan"), float("inf")])
