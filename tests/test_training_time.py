"""Training time τ: first passage of test accuracy over a target, and ⟨τ⟩ over ICs (censored and reached-only)."""

import numpy as np
import pytest

from gdchaos.core.errors import ConfigError
from gdchaos.analyses.training_time import DEFAULT_TARGETS, first_passage, summarize_tau


def test_first_passage_on_synthetic_accuracy_curves():
    t = np.arange(50)
    rising = 1 - np.exp(-t / 10)  # crosses 0.9 between t = 23 (0.8997) and t = 24 (0.9093)
    acc = np.stack([
        rising,
        np.full(50, 0.5),  # never reached
        np.full(50, 0.95),  # reached at step 0
        np.where(t == 7, 0.9, 0.1),  # touches the target exactly once (>= counts)
        np.where(t < 30, 0.1, np.nan),  # diverged before reaching it: NaN never counts
    ])
    tau = first_passage(acc, 0.9)
    assert tau.tolist() == [24, -1, 0, 7, -1]
    assert tau.dtype.kind == "i"
    assert first_passage(rising, 0.5).item() == 7  # 1 - e^-0.7 = 0.503


def test_first_passage_keeps_leading_axes_and_reads_time_last():
    rng = np.random.default_rng(0)
    acc = rng.uniform(0.0, 0.8, size=(3, 2, 4, 40))  # (eta, eps, ic, step)
    hits = {(0, 0, 1): 5, (2, 1, 3): 0, (1, 0, 0): 39}
    for idx, step in hits.items():
        acc[idx + (step,)] = 0.97
    tau = first_passage(acc, 0.9)
    assert tau.shape == (3, 2, 4)
    for idx, step in hits.items():
        assert tau[idx] == step
    assert (tau == -1).sum() == tau.size - len(hits)


def test_summarize_tau_reached_only_mean_and_counts():
    tau = np.array([[2, -1, 0, 4], [-1, -1, -1, -1], [10, 10, 10, 10]])
    s = summarize_tau(tau, steps=20)
    np.testing.assert_allclose(s["tau_mean_reached"], [2.0, np.nan, 10.0], equal_nan=True)
    np.testing.assert_allclose(s["tau_std_reached"], [np.sqrt(8 / 3), np.nan, 0.0], equal_nan=True)  # (0,2,4): var 8/3
    assert s["n_reached"].tolist() == [3, 0, 4]
    assert s["n_censored"].tolist() == [1, 4, 0]
    down = summarize_tau(tau, steps=20, axis=0)
    np.testing.assert_allclose(down["tau_mean_reached"], [6.0, 10.0, 5.0, 7.0])
    assert down["n_reached"].tolist() == [2, 1, 2, 2]


def test_summarize_tau_censors_never_reached_at_the_number_of_updates():
    """The paper's ⟨τ⟩ over all ICs: a never-reached IC counts as T = steps (by hand)."""
    tau = np.array([[2, -1, 0, 4], [-1, -1, -1, -1], [10, 10, 10, 10]])
    s = summarize_tau(tau, steps=20)
    # row 0: (2 + 20 + 0 + 4) / 4 = 6.5; deviations −4.5, 13.5, −6.5, −2.5 → variance 251/4
    np.testing.assert_allclose(s["tau_mean"], [6.5, 20.0, 10.0])
    np.testing.assert_allclose(s["tau_std"], [np.sqrt(251 / 4), 0.0, 0.0])
    down = summarize_tau(tau, steps=20, axis=0)
    np.testing.assert_allclose(down["tau_mean"], [32 / 3, 50 / 3, 10.0, 34 / 3])
    # a τ at or past the horizon cannot come from first_passage over `steps` records
    with pytest.raises(ConfigError, match="not below steps=10"):
        summarize_tau(np.array([3, 10]), steps=10)
    with pytest.raises(ConfigError, match="steps must be an integer >= 1"):
        summarize_tau(np.array([3]), steps=0)


def test_end_to_end_with_never_reached_censored_and_counted():
    t = np.arange(100)
    acc = np.stack([np.clip(t / 50, 0, 1), np.clip(t / 80, 0, 1), np.full(100, 0.3)])  # τ = 45, 72, never
    s = summarize_tau(first_passage(acc, 0.9), steps=100)
    assert s["tau_mean_reached"] == pytest.approx((45 + 72) / 2)
    assert s["tau_mean"] == pytest.approx((45 + 72 + 100) / 3)
    assert s["n_reached"] == 2 and s["n_censored"] == 1


def test_default_targets_follow_the_papers():
    assert DEFAULT_TARGETS["mnist"] == 0.9 and DEFAULT_TARGETS["iris"] == 0.9
    assert DEFAULT_TARGETS["cifar10"] == 0.3
