"""Property-based checks of sweep input validation: every bad value is a one-line error naming its key."""

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gdchaos.core.errors import ConfigError
from gdchaos.cli.overrides import vectorize_overrides
from gdchaos.sweep import precheck

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

NUMERIC_KEYS = ["eta", "eps", "n_ic", "n_perturb", "steps", "chunk", "seed", "lyapunov.k",
                "lyapunov.transient", "lyapunov.renorm_every", "lyapunov.min_r2", "lyapunov.start_max",
                "lyapunov.length_min", "lyapunov.length_step"]
CHOICE_KEYS = ["analysis", "precision", "loss", "data", "model", "optimizer", "model.activation"]

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.integers(min_value=-10**6, max_value=10**6),
    st.sampled_from([0, -1, 0.0, -0.0, 1e308, 1e-320, float("nan"), float("inf"), -float("inf")]),
)
junk = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12),
    st.sampled_from(["", "[]", "[1,", "null", "true", "abc", "1e-8,", "{}", "[[1]]", "'x'"]),
)


def render(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value == math.inf else "-inf" if value == -math.inf else repr(value))
    return str(value)


def outcome(override: str):
    """None if the override is accepted, else the ConfigError message; any other exception fails the test."""
    try:
        args = vectorize_overrides([override])
        if any(a.startswith("-") for a in args):
            return None  # became a multirun job: each job validates itself
        precheck(["analysis=both", *args] if not override.startswith("analysis=") else args)  # both: every lyapunov.* key is read
    except ConfigError as err:
        return str(err)
    return None


def assert_one_line_naming(message: str, key: str):
    assert "\n" not in message, message
    assert key.split(".")[-1] in message or key.split(".")[0] in message, (key, message)


@FUZZ
@given(key=st.sampled_from(NUMERIC_KEYS), value=numbers)
def test_numbers_are_accepted_only_when_valid(key, value):
    message = outcome(f"{key}={render(value)}")
    if message is not None:
        assert_one_line_naming(message, key)
        return
    # accepted: the value must be one a run can use
    if key in ("eta", "eps"):
        assert math.isfinite(value) and value > 0
    elif key == "lyapunov.min_r2":
        assert math.isfinite(value)
    else:
        assert isinstance(value, int) and value >= 0


@FUZZ
@given(key=st.sampled_from(NUMERIC_KEYS + CHOICE_KEYS), value=junk)
def test_junk_values_never_crash(key, value):
    message = outcome(f"{key}={value}")
    if message is not None:
        assert "\n" not in message and "Traceback" not in message


@FUZZ
@given(values=st.lists(numbers, min_size=0, max_size=4))
def test_eta_lists_accept_only_finite_positive_grids(values):
    message = outcome("eta=[" + ",".join(render(v) for v in values) + "]")
    valid = len(values) > 0 and all(math.isfinite(v) and v > 0 for v in values)
    assert (message is None) == valid, message
    if message is not None:
        assert "eta" in message and "\n" not in message


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("etaa=1", "etaa"),
        ("data=not_there", "data/not_there"),
        ("n_ic=2.5", "n_ic must be an integer"),
        ("steps=0", "steps must be an integer >= 1"),
        ("steps=50", "raise steps"),  # window grid longer than the run
        ("eps=1e400", "eps must be finite"),
        ("lyapunov.transient=5000", "lyapunov.transient"),
        ("loss=hinge", "unknown loss"),
        ("precision=float16", "precision must be"),
    ],
)
def test_named_bad_inputs(override, fragment):
    message = outcome(override)
    assert message is not None and fragment in message and "\n" not in message
