"""``--request-hook``: a callable named MODULE:CALLABLE, or a clear refusal at start."""

import pytest

from kfp_llmops.errors import UserInputError
from kfp_llmops.serving.hooks import load_request_hook


def test_a_hook_is_imported_by_name():
    assert load_request_hook("faults:inject").__name__ == "inject"  # tests/faults.py, on sys.path here
    assert load_request_hook("") is None


@pytest.mark.parametrize("spec, message", [
    ("faults", "takes MODULE:CALLABLE"),
    ("no_such_module_here:f", "No module named 'no_such_module_here'"),
    ("faults:missing", "has no attribute 'missing'"),
    ("faults:ENV", "ENV is not callable"),
])
def test_a_spec_that_names_no_callable_is_refused(spec, message):
    with pytest.raises(UserInputError, match=message):
        load_request_hook(spec)
