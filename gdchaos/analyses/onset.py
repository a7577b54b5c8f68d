r"""A learning-rate finder from the onset of sensitivity to initial conditions, and the LR range test.

jimenez-gonzalez2026 find training fastest (minimal ⟨τ⟩) near the learning rate where

    ρ(η) = fraction of initial conditions with a positive finite Lyapunov exponent Λ

rises from 0 to ≈ 1, and propose to locate it by bisection of a bracket [η_min, η_max]
with ρ(η_min) ≈ 0 and ρ(η_max) ≈ 1. :func:`onset_search` does a k-section on u = ln η:

* round 0 measures ρ at k points u_i = u_min + i (u_max − u_min)/(k − 1), i = 0..k−1
  (both ends included, to check the bracket);
* every later round measures k interior points u_a + i (u_b − u_a)/(k + 1), i = 1..k, of
  the active bracket [a, b], shrinking its width in u by the factor k + 1.

Every round is one call ``rho_at(etas)`` with k values, so a compiled program never sees
a new shape. From all points measured so far, sorted by η, the bracket of a level ℓ is the
first upward crossing: b = the smallest measured η with ρ̂(b) ≥ ℓ, a = the measured η just
below it. η_onset crosses ℓ = ½, η_full crosses ℓ = ``threshold`` (default 0.95); the onset
bracket is refined first, then the full one. Each stops when b/a − 1 ≤ ``rtol`` (or after
``max_rounds``). Within the final bracket the crossing is interpolated linearly in ln η:

    ln η_ℓ = ln a + (ℓ − ρ̂(a)) / (ρ̂(b) − ρ̂(a)) · (ln b − ln a).

Uncertainty: every ρ̂ = m/n carries a Wilson score interval (:func:`wilson_interval`);
the confidence interval of η_ℓ runs from the largest measured η ≤ a whose interval lies
wholly below ℓ to the smallest measured η ≥ b whose interval lies wholly above ℓ (the
search's end η_min or η_max where no measured point is that clear). The final bracket
[a, b] is the resolution; the confidence interval is the statistical error (wider when n is small).

Honest failure: the result's ``status`` names it and the failed η is None, never a number:
``onset_below_bracket`` (ρ̂(η_min) ≥ ½), ``no_onset`` (ρ̂ < ½ at every measured η),
``not_monotone`` (ρ̂ rises above ½ but falls clearly below it again, at η_max or between
η_onset and η_full), ``threshold_not_reached`` (η_onset found, ρ̂ < threshold everywhere).

Cost is counted in member-steps: each η point costs n_ic · (n_perturb + 1) · steps
(``cost_per_eta``). A uniform log grid of the same resolution over [η_min, η_max] has

    N_grid = ⌈ln(η_max/η_min) / ln(1 + rtol)⌉ + 1

points (:func:`uniform_grid_points`). :func:`finite_rho` builds ``rho_at`` from a gdchaos
task with the finite-ε method, as :func:`gdchaos.experiments.finite.finite_sweep` does.

The baseline :func:`lr_range_test` is Smith's LR range test (Smith 2017, "Cyclical
learning rates for training neural networks", §3.3) as fastai's ``lr_find`` runs it; the
validation :func:`validate_tau` measures ⟨τ⟩ on fresh initial conditions.
"""

from __future__ import annotations

import functools
import math
import time
from statistics import NormalDist
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from gdchaos.analyses.lyapunov.finite import DEFAULT_LENGTHS, DEFAULT_STARTS, check_estimator, check_window_grid, finite_exponents
from gdchaos.analyses.training_time import first_passage, summarize_tau
from gdchaos.core.errors import check
from gdchaos.core.maps import TrainingMap
from gdchaos.engine import ensemble
from gdchaos.engine.ensemble import reference_states

STATUSES = ("ok", "max_rounds", "threshold_not_reached", "no_onset", "onset_below_bracket", "not_monotone")
"""Values of :attr:`OnsetResult.status`; the first two carry both η values."""

RULES = ("steep", "minimum")
"""Suggestion rules of :func:`lr_range_test` (fastai's ``SuggestionMethod.Steep`` and ``.Minimum``)."""


# --------------------------------------------------------------------------- statistics


def wilson_interval(m: ArrayLike, n: ArrayLike, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    r"""Wilson score interval of a binomial proportion p̂ = m/n.

    With z = Φ⁻¹(1 − α/2), α = 1 − ``confidence``:

        centre = (p̂ + z²/(2n)) / (1 + z²/n),
        half   = z / (1 + z²/n) · √(p̂(1 − p̂)/n + z²/(4n²)),

    interval [centre − half, centre + half] (inside [0, 1]; [0, 1] where n = 0).

    Example (3 of 10 at 95 %):
        >>> lo, hi = wilson_interval(3, 10)
        >>> round(float(lo), 4), round(float(hi), 4)
        (0.1078, 0.6032)
    """
    check(0 < confidence < 1, f"confidence must be in (0, 1); got {confidence}")
    m, n = np.asarray(m, np.float64), np.asarray(n, np.float64)
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    safe = np.maximum(n, 1)
    p = m / safe
    denom = 1 + z * z / safe
    centre = (p + z * z / (2 * safe)) / denom
    half = z / denom * np.sqrt(np.maximum(p * (1 - p), 0.0) / safe + z * z / (4 * safe * safe))
    lo = np.where(n > 0, np.clip(centre - half, 0.0, 1.0), 0.0)
    hi = np.where(n > 0, np.clip(centre + half, 0.0, 1.0), 1.0)
    return lo, hi


def uniform_grid_points(eta_min: float, eta_max: float, rtol: float) -> int:
    r"""Points of a uniform log-η grid over [η_min, η_max] whose neighbours differ by the factor 1 + rtol.

    N = ⌈ln(η_max/η_min) / ln(1 + rtol)⌉ + 1.

    Example:
        >>> uniform_grid_points(0.01, 100.0, 0.1)
        98
    """
    check(0 < eta_min < eta_max, f"need 0 < eta_min < eta_max; got [{eta_min}, {eta_max}]")
    check(rtol > 0, f"rtol must be > 0; got {rtol}")
    return int(math.ceil(math.log(eta_max / eta_min) / math.log1p(rtol) - 1e-9)) + 1


def interior_points(a: float, b: float, k: int) -> np.ndarray:
    """The k points splitting [a, b] into k + 1 equal parts in ln η (ends excluded).

    Example:
        >>> np.round(interior_points(1.0, 16.0, 3), 9).tolist()
        [2.0, 4.0, 8.0]
    """
    check(0 < a < b, f"need 0 < a < b; got [{a}, {b}]")
    return np.exp(np.linspace(math.log(a), math.log(b), k + 2)[1:-1])


# --------------------------------------------------------------------------- the search


class RhoPoints(NamedTuple):
    """ρ measured at some learning rates, sorted by η.

    Attributes:
        eta, rho, n: learning rates, measured fractions ρ̂ and sample sizes.
        ci_low, ci_high: Wilson interval of each ρ̂.
        round: the search round that measured each point.
    """
    eta: np.ndarray
    rho: np.ndarray
    n: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    round: np.ndarray


class OnsetResult(NamedTuple):
    """Outcome of :func:`onset_search`.

    Attributes:
        status: one of :data:`STATUSES`.
        eta_onset: η where ρ crosses ½ (None when not located).
        eta_onset_interval: ``(low, high)`` confidence interval of η_onset (see the module docstring).
        onset_bracket: the final bracket ``(a, b)`` of the ½ crossing.
        eta_full: η where ρ first reaches ``threshold`` (None when not located).
        interval: ``(low, high)`` confidence interval of η_full.
        full_bracket: the final bracket of the threshold crossing.
        threshold, rtol, confidence: the settings.
        points: every measured point (:class:`RhoPoints`).
        brackets: per round, ``(target, a, b)``: the bracket that round refined (``target`` is
            ``"initial"``, ``"onset"`` or ``"full"``).
        rounds: rounds run.
        member_steps: total cost, Σ over rounds of k · ``cost_per_eta``.
        member_steps_onset: cost up to the round after which η_onset met ``rtol``.
        grid_member_steps: cost of the uniform log grid of the same resolution.
        compile_seconds, run_seconds: time spent compiling and running ``rho_at``.
        message: one line saying what was found or why not.
    """
    status: str
    eta_onset: float | None
    eta_onset_interval: tuple[float, float] | None
    onset_bracket: tuple[float, float] | None
    eta_full: float | None
    interval: tuple[float, float] | None
    full_bracket: tuple[float, float] | None
    threshold: float
    rtol: float
    confidence: float
    points: RhoPoints
    brackets: list
    rounds: int
    member_steps: float
    member_steps_onset: float | None
    grid_member_steps: float
    compile_seconds: float
    run_seconds: float
    message: str


def _points(rows: list, confidence: float) -> RhoPoints:
    a = np.array(rows, np.float64).reshape(-1, 4)
    order = np.argsort(a[:, 0], kind="stable")
    a = a[order]
    m = np.round(a[:, 1] * a[:, 2])
    lo, hi = wilson_interval(m, a[:, 2], confidence)
    return RhoPoints(a[:, 0], a[:, 1], a[:, 2].astype(int), lo, hi, a[:, 3].astype(int))


def crossing(points: RhoPoints, level: float) -> tuple[int | None, str | None]:
    """Index j of the first measured point with ρ̂ ≥ ``level`` (the bracket is points j−1, j), or ``(None, why)``.

    Example:
        >>> p = _points([(1.0, 0.0, 10, 0), (2.0, 0.2, 10, 0), (4.0, 0.9, 10, 0)], 0.95)
        >>> crossing(p, 0.5)
        (2, None)
    """
    above = np.flatnonzero(points.rho >= level)
    if above.size == 0:
        return None, "never"
    if above[0] == 0:
        return None, "below"
    return int(above[0]), None


def interpolate(points: RhoPoints, j: int, level: float) -> float:
    r"""η where ρ crosses ``level`` between points j − 1 and j, linearly in ln η.

    Example:
        >>> p = _points([(1.0, 0.0, 10, 0), (4.0, 1.0, 10, 0)], 0.95)
        >>> interpolate(p, 1, 0.5)
        2.0
    """
    ua, ub = math.log(points.eta[j - 1]), math.log(points.eta[j])
    ra, rb = float(points.rho[j - 1]), float(points.rho[j])
    frac = 0.5 if rb <= ra else min(max((level - ra) / (rb - ra), 0.0), 1.0)
    return float(math.exp(ua + frac * (ub - ua)))


def confidence_interval(points: RhoPoints, j: int, level: float) -> tuple[float, float]:
    """Largest η ≤ η_{j−1} with ρ's interval below ``level`` and smallest η ≥ η_j with it above (search ends if none).

    Example:
        >>> p = _points([(1.0, 0.0, 10, 0), (2.0, 0.4, 10, 0), (4.0, 1.0, 10, 0)], 0.95)
        >>> confidence_interval(p, 2, 0.5)
        (1.0, 4.0)
    """
    below = np.flatnonzero((points.ci_high < level) & (np.arange(points.eta.size) <= j - 1))
    above = np.flatnonzero((points.ci_low > level) & (np.arange(points.eta.size) >= j))
    low = float(points.eta[below[-1]]) if below.size else float(points.eta[0])
    high = float(points.eta[above[0]]) if above.size else float(points.eta[-1])
    return low, high


def _converged(bracket: tuple[float, float], rtol: float) -> bool:
    return bracket[1] / bracket[0] - 1 <= rtol


def _curve(points: RhoPoints) -> str:
    return ", ".join(f"{e:.3g}:{r:.2f}" for e, r in zip(points.eta, points.rho))


def onset_search(
    rho_at: Callable[[np.ndarray], tuple],
    eta_min: float,
    eta_max: float,
    *,
    k: int = 3,
    rtol: float = 0.1,
    threshold: float = 0.95,
    level: float = 0.5,
    max_rounds: int = 8,
    confidence: float = 0.95,
    cost_per_eta: float | None = None,
) -> OnsetResult:
    r"""k-section search on ln η for the onset (ρ = ``level``) and full development (ρ = ``threshold``) of chaos.

    Args:
        rho_at: ``rho_at(etas) -> (rho, n)``: ρ̂ and the number of initial conditions at each
            of the k learning rates (one vectorized measurement). If it has attributes
            ``cost_per_eta`` and ``last_seconds`` (``(compile, run)`` of its latest call), they
            are used for the cost accounting, as :func:`finite_rho` provides.
        eta_min, eta_max: the initial bracket, ideally ρ(η_min) ≈ 0 and ρ(η_max) ≈ 1.
        k: points per round (≥ 2).
        rtol: stop refining a bracket [a, b] once b/a − 1 ≤ rtol.
        threshold: the level of η_full (ρ "fully developed").
        level: the level of η_onset (½).
        max_rounds: cap on rounds (round 0 included).
        confidence: of the Wilson intervals.
        cost_per_eta: member-steps of one η point (default ``rho_at.cost_per_eta``, else n).

    Returns:
        :class:`OnsetResult`; see the module docstring for the rules and the statuses.

    Example (a sharp logistic ρ(η) crossing ½ at η = 2, measured exactly):
        >>> rho = lambda e: (1 / (1 + (2.0 / e) ** 20), np.full(len(e), 1000))
        >>> r = onset_search(rho, 0.1, 100.0, k=3, rtol=0.05)
        >>> r.status, round(r.eta_onset, 2), r.rounds
        ('ok', 2.0, 7)
    """
    check(0 < eta_min < eta_max and math.isfinite(eta_max), f"need 0 < eta_min < eta_max; got [{eta_min}, {eta_max}]")
    check(isinstance(k, (int, np.integer)) and k >= 2, f"k must be an integer >= 2; got {k!r}")
    check(rtol > 0, f"rtol must be > 0; got {rtol}")
    check(0 < level <= threshold <= 1,
          f"need 0 < level <= threshold <= 1; got level={level}, threshold={threshold}")
    check(isinstance(max_rounds, (int, np.integer)) and max_rounds >= 1, f"max_rounds must be an integer >= 1; got {max_rounds!r}")
    rows: list = []
    brackets: list = []
    spent, onset_cost = 0.0, None
    seconds = [0.0, 0.0]
    per_eta = cost_per_eta if cost_per_eta is not None else getattr(rho_at, "cost_per_eta", None)
    etas = np.exp(np.linspace(math.log(eta_min), math.log(eta_max), k))
    target = ("initial", float(eta_min), float(eta_max))
    status, onset_j, full_j, points = "max_rounds", None, None, None
    for r in range(max_rounds):
        brackets.append(target)
        t0 = time.perf_counter()
        rho, n = rho_at(np.asarray(etas, np.float64))[:2]
        wall = time.perf_counter() - t0
        timing = getattr(rho_at, "last_seconds", None)
        compile_s, run_s = (float(timing[0]), float(timing[1])) if timing is not None else (0.0, wall)
        seconds[0] += compile_s
        seconds[1] += run_s
        rho = np.broadcast_to(np.asarray(rho, np.float64), (k,))
        n = np.broadcast_to(np.asarray(n, np.float64), (k,))
        spent += float(np.sum(n)) if per_eta is None else k * float(per_eta)
        rows += [(float(e), float(p), float(m), r) for e, p, m in zip(etas, rho, n)]
        points = _points(rows, confidence)
        onset_j, why = crossing(points, level)
        if onset_j is None:
            status = "onset_below_bracket" if why == "below" else "no_onset"
            break
        if points.ci_high[-1] < level:
            status = "not_monotone"
            break
        onset = (float(points.eta[onset_j - 1]), float(points.eta[onset_j]))
        if _converged(onset, rtol) and onset_cost is None:
            onset_cost = spent
        full_j, _ = crossing(points, threshold)
        if full_j is not None and np.any(points.ci_high[onset_j:full_j] < level):
            status = "not_monotone"
            break
        if not _converged(onset, rtol):
            target = ("onset", *onset)
        elif full_j is not None and not _converged((float(points.eta[full_j - 1]), float(points.eta[full_j])), rtol):
            target = ("full", float(points.eta[full_j - 1]), float(points.eta[full_j]))
        else:
            status = "ok" if full_j is not None else "threshold_not_reached"
            break
        etas = interior_points(target[1], target[2], k)
    n_grid = uniform_grid_points(eta_min, eta_max, rtol)
    grid_cost = n_grid * (float(per_eta) if per_eta is not None else float(np.mean(points.n)))
    common = dict(threshold=threshold, rtol=rtol, confidence=confidence, points=points, brackets=brackets,
                  rounds=len(brackets), member_steps=spent, member_steps_onset=onset_cost, grid_member_steps=grid_cost,
                  compile_seconds=seconds[0], run_seconds=seconds[1])
    curve = _curve(points)
    if status in ("onset_below_bracket", "no_onset", "not_monotone"):
        why = {
            "onset_below_bracket": f"rho(eta_min={eta_min:g}) = {points.rho[0]:.2f} >= {level:g}: the onset lies below the bracket",
            "no_onset": f"rho < {level:g} at every measured eta in [{eta_min:g}, {eta_max:g}]: no onset in the bracket",
            "not_monotone": f"rho rises above {level:g} and falls clearly below it again: no single crossing to bracket",
        }[status]
        return OnsetResult(status, None, None, None, None, None, None, **common, message=f"{status}: {why}; rho(eta) = {curve}")
    onset = (float(points.eta[onset_j - 1]), float(points.eta[onset_j]))
    eta_onset = interpolate(points, onset_j, level)
    onset_ci = confidence_interval(points, onset_j, level)
    if full_j is None:
        msg = (f"threshold_not_reached: eta_onset = {eta_onset:.4g} in [{onset_ci[0]:.4g}, {onset_ci[1]:.4g}], but rho < "
               f"{threshold:g} at every measured eta (max {points.rho.max():.2f}); rho(eta) = {curve}")
        return OnsetResult("threshold_not_reached", eta_onset, onset_ci, onset, None, None, None, **common, message=msg)
    full = (float(points.eta[full_j - 1]), float(points.eta[full_j]))
    eta_full = interpolate(points, full_j, threshold)
    full_ci = confidence_interval(points, full_j, threshold)
    if status != "ok":
        status = "ok" if _converged(onset, rtol) and _converged(full, rtol) else "max_rounds"
    msg = (f"{status}: eta_onset = {eta_onset:.4g} (bracket [{onset[0]:.4g}, {onset[1]:.4g}], {100 * confidence:g}% CI "
           f"[{onset_ci[0]:.4g}, {onset_ci[1]:.4g}]), eta_full(rho >= {threshold:g}) = {eta_full:.4g} (bracket "
           f"[{full[0]:.4g}, {full[1]:.4g}], CI [{full_ci[0]:.4g}, {full_ci[1]:.4g}])")
    return OnsetResult(status, eta_onset, onset_ci, onset, eta_full, full_ci, full, **common, message=msg)


# --------------------------------------------------------------------------- ρ from a task


class FiniteRho:
    r"""``rho_at`` of a gdchaos task by the finite-ε method (ρ = kept fraction of :func:`finite_exponents`).

    Each call runs the (η, ε, ic, member) ensemble of ``task`` at the given η values with
    one ε, ``n_ic`` initial conditions (the same draws from ``seed`` at every call) and
    ``n_perturb`` perturbed members for ``steps`` updates, fits Λ per initial condition as
    :func:`gdchaos.experiments.finite.finite_sweep` does, and returns

        ρ̂(η) = #{ic : Λ kept (R² > min_r2 and Λ > min_exponent)} / n_ic,   n = n_ic.

    Λ's fit windows end by step max(starts) + max(lengths), so ``steps`` beyond that change nothing.

    Attributes:
        cost_per_eta: n_ic · (n_perturb + 1) · steps member-steps per η.
        last_seconds: ``(compile, run)`` seconds of the latest call.
        compile_seconds, run_seconds: totals over calls.

    Example:
        >>> from gdchaos.experiments.task import build_task
        >>> task = build_task({"name": "iris"}, {"hidden": [10]}, {"name": "sgd"})
        >>> rho_at = FiniteRho(task, n_ic=2, n_perturb=1, steps=60, eps=1e-3, starts=[0, 5], lengths=[20, 30])
        >>> rho, n = rho_at(np.array([0.5, 5.0]))
        >>> rho.shape, n.tolist(), rho_at.cost_per_eta
        ((2,), [2, 2], 240)
    """
    def __init__(
        self,
        task,
        *,
        n_ic: int = 24,
        n_perturb: int = 2,
        steps: int = 202,
        eps: float = 1e-8,
        seed: int = 0,
        starts=None,
        lengths=None,
        min_r2: float = 0.9,
        min_exponent: float = 0.05,
        estimator: str = "window",
        chunk: int | None = None,
    ) -> None:

        self.task = task
        self.n_ic, self.n_perturb, self.steps, self.eps, self.seed = int(n_ic), int(n_perturb), int(steps), float(eps), int(seed)
        self.starts = tuple(DEFAULT_STARTS if starts is None else starts)
        self.lengths = tuple(DEFAULT_LENGTHS if lengths is None else lengths)
        check_window_grid(self.steps - 1, self.starts, self.lengths)
        check_estimator(estimator)
        self.min_r2, self.min_exponent, self.estimator = float(min_r2), float(min_exponent), estimator
        self.chunk = self.steps if chunk is None else int(chunk)
        self.cost_per_eta = self.n_ic * (self.n_perturb + 1) * self.steps
        self.last_seconds = (0.0, 0.0)
        self.compile_seconds = self.run_seconds = 0.0

    def __call__(self, etas: ArrayLike) -> tuple[np.ndarray, np.ndarray]:

        task = self.task
        result = ensemble.run(
            task.tmap, task.model.init, eta=np.asarray(etas, np.float64), eps=[self.eps], n_ic=self.n_ic,
            n_perturb=self.n_perturb, steps=self.steps, key=jax.random.key(self.seed), observe=task.observe,
            hyper=task.hyper, chunk=self.chunk, progress=False,
        )
        members = result.records["distance"][:, :, :, 1:]  # step 0: the initial ε-ball distances, before any update
        fe = finite_exponents(members, self.starts, self.lengths, self.min_r2, self.min_exponent, self.estimator)
        self.last_seconds = (result.compile_seconds, result.run_seconds)
        self.compile_seconds += result.compile_seconds
        self.run_seconds += result.run_seconds
        kept = np.asarray(fe.kept)[:, 0, :]
        return kept.mean(axis=-1), np.full(kept.shape[0], self.n_ic)


def finite_rho(task: Any, **kwargs: Any) -> FiniteRho:
    """:class:`FiniteRho` of ``task`` (keyword arguments as there).

    Example:
        >>> from gdchaos.experiments.task import build_task
        >>> finite_rho(build_task({"name": "iris"}, {"hidden": [10]}, {"name": "sgd"}), n_ic=4, steps=202).cost_per_eta
        2424
    """
    return FiniteRho(task, **kwargs)


# --------------------------------------------------------------------------- LR range test


class RangeTest(NamedTuple):
    """Outcome of :func:`lr_range_test`.

    Attributes:
        eta: ``(num_it,)`` learning rate of each update.
        loss: ``(n_ic, num_it)`` training loss at θ_t (before update t); NaN after divergence.
        smoothed: ``(n_ic, num_it)`` bias-corrected exponential moving average of ``loss``.
        stop: ``(n_ic,)`` last recorded update (the one that tripped the 4× rule, or num_it − 1).
        suggestions: ``(n_ic,)`` suggested η per initial condition (NaN if the curve was too short).
        suggestion: geometric mean of the finite ``suggestions``.
        spread: std of log10(suggestions) (decades).
        rule: the suggestion rule.
        member_steps: updates run, n_ic · num_it.
        member_steps_to_stop: updates up to each stop, Σ (stop + 1) (what a run that stops early costs).
        compile_seconds, run_seconds: timings.
    """
    eta: np.ndarray
    loss: np.ndarray
    smoothed: np.ndarray
    stop: np.ndarray
    suggestions: np.ndarray
    suggestion: float
    spread: float
    rule: str
    member_steps: int
    member_steps_to_stop: int
    compile_seconds: float
    run_seconds: float


def smooth_losses(loss: np.ndarray, beta: float = 0.98) -> np.ndarray:
    r"""fastai's smoothed loss: a_t = β a_{t−1} + (1 − β) L_t, a_{−1} = 0, reported as a_t / (1 − β^{t+1}).

    Along the last axis; once a loss is non-finite, that and later values are NaN.

    Example:
        >>> smooth_losses(np.array([1.0, 3.0]), beta=0.5).tolist()
        [1.0, 2.3333333333333335]
    """
    loss = np.asarray(loss, np.float64)
    check(0 <= beta < 1, f"beta must be in [0, 1); got {beta}")
    out = np.empty_like(loss)
    avg = np.zeros(loss.shape[:-1])
    bad = np.zeros(loss.shape[:-1], bool)
    for t in range(loss.shape[-1]):
        x = loss[..., t]
        bad = bad | ~np.isfinite(x)
        avg = beta * avg + (1 - beta) * np.where(bad, 0.0, x)
        out[..., t] = np.where(bad, np.nan, avg / (1 - beta ** (t + 1)))
    return out


def stop_index(smoothed: np.ndarray, factor: float = 4.0) -> np.ndarray:
    """fastai's divergence stop: the first t with smoothed_t > factor · min_{s≤t} smoothed_s or non-finite; else the last t.

    Example:
        >>> stop_index(np.array([[5.0, 2.0, 7.0, 9.0, 1.0], [3.0, 2.0, 1.0, 1.0, 1.0]])).tolist()
        [3, 4]
    """
    s = np.asarray(smoothed, np.float64)
    best = np.fmin.accumulate(np.where(np.isfinite(s), s, np.inf), axis=-1)
    trip = ~np.isfinite(s) | (s > factor * best)
    return np.where(trip.any(axis=-1), trip.argmax(axis=-1), s.shape[-1] - 1)


def suggest(eta: np.ndarray, smoothed: np.ndarray, stop: int, rule: str = "steep", num_it: int | None = None,
            skip_end: int = 5) -> float:
    r"""fastai's suggestion from one recorded curve (updates 0..stop), trimmed as ``lr_find`` does: [num_it // 10, −skip_end).

    ``steep`` (fastai ``steep``): with L the smoothed loss, the η_i at the most negative
    slope (L_{i+1} − L_i) / (ln η_{i+1} − ln η_i) (η of the left end of the steepest
    segment). ``minimum`` (fastai ``minimum``): η at min L, divided by 10.
    NaN when fewer than two points remain.

    Example (the loss falls fastest between η = 0.04 and 0.08):
        >>> eta = 0.01 * 2.0 ** np.arange(6)
        >>> suggest(eta, np.array([5.0, 4.9, 4.5, 2.0, 1.9, 1.8]), 5, num_it=6, skip_end=0)
        0.04
    """
    check(rule in RULES, f"unknown rule {rule!r}; choose one of {list(RULES)}")
    num_it = len(eta) if num_it is None else num_it
    lo, hi = num_it // 10, stop + 1 - skip_end
    e, s = np.asarray(eta[lo:hi], np.float64), np.asarray(smoothed[lo:hi], np.float64)
    if e.size < 2 or not np.all(np.isfinite(s)):
        return float("nan")
    if rule == "minimum":
        return float(e[np.argmin(s)] / 10)
    grads = np.diff(s) / np.diff(np.log(e))
    return float(e[np.argmin(grads)])


@functools.lru_cache(maxsize=16)
def _range_program(tmap, num_it: int):
    def one(state, eta_t, hyper):
        state, info = tmap.step(state, {**hyper, "learning_rate": eta_t})
        return state, info.loss

    def run(states, etas, hyper):
        def per_ic(state):
            return jax.lax.scan(lambda s, e: one(s, e, hyper), state, etas)[1]

        return jax.vmap(per_ic)(states)

    return jax.jit(run)


def lr_range_test(
    tmap: TrainingMap,
    init_params: Callable,
    *,
    eta_min: float = 1e-4,
    eta_max: float = 100.0,
    num_it: int = 100,
    n_ic: int = 5,
    key: jax.Array | None = None,
    hyper: dict | None = None,
    beta: float = 0.98,
    stop_factor: float = 4.0,
    rule: str = "steep",
    skip_end: int = 5,
) -> RangeTest:
    r"""Smith's LR range test as fastai's ``lr_find`` runs it, from ``n_ic`` initial conditions at once (vmap).

    One run of ``num_it`` updates with η growing exponentially, η_t = η_min (η_max/η_min)^{t/(num_it−1)};
    the loss L_t at θ_t is smoothed (:func:`smooth_losses`, β = 0.98), the run is cut at
    the first update whose smoothed loss exceeds ``stop_factor`` (4) × the best so far
    (:func:`stop_index`), and :func:`suggest` picks η from the curve (default: fastai's
    ``steep``, the steepest descent of the smoothed loss vs ln η). The reported suggestion
    is the geometric mean over initial conditions; ``spread`` the std of their log10.

    The initial conditions are those of :func:`gdchaos.engine.ensemble.draw` with ``key``.

    Example (GD on the quadratic ½w², which diverges for η > 2; the suggestion is a stable η):
        >>> from gdchaos.core.maps import gd
        >>> tmap = gd(lambda p, x, y: 0.5 * jnp.sum(p ** 2), jnp.zeros(1), jnp.zeros(1))
        >>> rt = lr_range_test(tmap, lambda k: jax.random.normal(k, (3,)), eta_min=0.01, eta_max=10.0, num_it=60, n_ic=2)
        >>> rt.loss.shape, bool(rt.suggestion < 2.0), rt.member_steps
        ((2, 60), True, 120)
    """
    check(0 < eta_min < eta_max, f"need 0 < eta_min < eta_max; got [{eta_min}, {eta_max}]")
    check(isinstance(num_it, (int, np.integer)) and num_it >= 2, f"num_it must be an integer >= 2; got {num_it!r}")
    check(isinstance(n_ic, (int, np.integer)) and n_ic >= 1, f"n_ic must be an integer >= 1; got {n_ic!r}")
    check(stop_factor > 1, f"stop_factor must be > 1; got {stop_factor}")
    check(rule in RULES, f"unknown rule {rule!r}; choose one of {list(RULES)}")
    key = jax.random.key(0) if key is None else key
    dtype = jnp.result_type(float)
    eta = np.exp(np.linspace(math.log(eta_min), math.log(eta_max), num_it))
    etas = jnp.asarray(eta, dtype)
    hyp = {k: jnp.asarray(v, dtype) for k, v in (hyper or {}).items()}
    t0 = time.perf_counter()
    states = jax.jit(reference_states, static_argnums=(0, 1, 3))(tmap, init_params, key, int(n_ic))
    program = _range_program(tmap, int(num_it))
    compiled = program.lower(states, etas, hyp).compile()
    t1 = time.perf_counter()
    loss = np.asarray(jax.device_get(compiled(states, etas, hyp)), np.float64)
    t2 = time.perf_counter()
    smoothed = smooth_losses(loss, beta)
    stop = stop_index(smoothed, stop_factor)
    for i, s in enumerate(stop):
        smoothed[i, s + 1:] = np.nan
    sugg = np.array([suggest(eta, smoothed[i], int(stop[i]), rule, num_it, skip_end) for i in range(n_ic)])
    ok = np.isfinite(sugg) & (sugg > 0)
    logs = np.log10(sugg[ok])
    return RangeTest(
        eta=eta, loss=loss, smoothed=smoothed, stop=stop, suggestions=sugg,
        suggestion=float(10 ** logs.mean()) if logs.size else float("nan"),
        spread=float(logs.std()) if logs.size else float("nan"), rule=rule,
        member_steps=int(n_ic * num_it), member_steps_to_stop=int(np.sum(stop + 1)),
        compile_seconds=t1 - t0, run_seconds=t2 - t1,
    )


# --------------------------------------------------------------------------- validation


class TauValidation(NamedTuple):
    r"""⟨τ⟩ at some learning rates over fresh initial conditions.

    Attributes:
        eta: ``(n_eta,)``.
        tau: ``(n_eta, n_ic)`` first update with test accuracy ≥ target, −1 if never.
        tau_mean: ⟨τ⟩ over all ICs, never-reached censored at ``steps`` (a lower bound if any is).
        tau_sem: its standard error, std/√n_ic.
        n_censored: ICs that never reached the target.
        steps, target, seed: the settings.
        compile_seconds, run_seconds: timings.
    """
    eta: np.ndarray
    tau: np.ndarray
    tau_mean: np.ndarray
    tau_sem: np.ndarray
    n_censored: np.ndarray
    steps: int
    target: float
    seed: int
    compile_seconds: float
    run_seconds: float


def validate_tau(task: Any, etas: ArrayLike, *, n_ic: int = 20, steps: int = 1000, seed: int = 1, target: float | None = None,
                 chunk: int = 250) -> TauValidation:
    r"""Train ``n_ic`` fresh initial conditions (drawn from ``seed``) at each η and measure ⟨τ⟩.

    τ_i = min{t : test accuracy(θ_t) ≥ target} (:func:`gdchaos.analyses.training_time.first_passage`);
    ⟨τ⟩ = n⁻¹ Σ_i min(τ_i, T) with never-reached ICs at T = ``steps``
    (:func:`gdchaos.analyses.training_time.summarize_tau`), standard error std/√n.
    Only reference trajectories are run (no perturbed members).

    Example:
        >>> from gdchaos.experiments.task import build_task
        >>> task = build_task({"name": "iris"}, {"hidden": [10]}, {"name": "sgd"})
        >>> v = validate_tau(task, [1.0], n_ic=3, steps=50)
        >>> v.tau.shape, bool(v.tau_mean[0] <= 50)
        ((1, 3), True)
    """
    eta = np.atleast_1d(np.asarray(etas, np.float64))
    check(eta.size > 0 and bool(np.all(np.isfinite(eta) & (eta > 0))), f"learning rates must be finite and > 0; got {eta.tolist()}")
    check(isinstance(n_ic, (int, np.integer)) and n_ic >= 1, f"n_ic must be an integer >= 1; got {n_ic!r}")
    target = task.accuracy_target if target is None else float(target)
    dtype = jnp.result_type(float)
    t0 = time.perf_counter()
    states = jax.jit(ensemble.reference_states, static_argnums=(0, 1, 3))(task.tmap, task.model.init, jax.random.key(seed), int(n_ic))
    state = jax.tree.map(lambda a: jnp.broadcast_to(a[None, None, :, None], (eta.size, 1, *a.shape[:1], 1, *a.shape[1:])), states)
    shape = (eta.size, 1, n_ic, 1)
    carry = ensemble.EnsembleCarry(state, jnp.zeros(shape, bool), jnp.full(shape, -1, jnp.int32))
    init_seconds = time.perf_counter() - t0
    _, records, compile_s, run_s = ensemble.advance(
        task.tmap, carry, ensemble.eta_hyper(jnp.asarray(eta, dtype), task.hyper), n_ic=n_ic, steps=steps,
        observe=task.observe, chunk=min(chunk, steps), progress=False,
    )
    tau = first_passage(records["accuracy"][:, 0, :, 0, :], target)
    s = summarize_tau(tau, steps)
    return TauValidation(eta, tau, s["tau_mean"], s["tau_std"] / math.sqrt(n_ic), s["n_censored"], int(steps), target,
                         int(seed), init_seconds + compile_s, run_s)
