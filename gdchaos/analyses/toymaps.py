r"""Gradient descent on low-dimensional potentials: orbit diagrams and exact Lyapunov exponents.

GD with learning rate η on a potential V: ℝ^d → ℝ is the map (jimenez-gonzalez2026, App. A)

    w_{t+1} = f_η(w_t) = w_t − η ∇V(w_t),        Df_η(w) = I − η ∇²V(w),

with ∇V and the tangent map from ``jax.grad``/``jax.jvp`` (no hand-written derivative).
In one dimension the single Lyapunov exponent is the time average

    λ(η) = lim_{T→∞} (1/T) Σ_t ln |1 − η V''(w_t)|

along an orbit (the paper's eq. A3 prints ``|ln f'|``; the exponent is ``ln|f'|``).
In d > 1 dimensions one tangent vector is pushed through Df_η and renormalized every
step, which gives the maximal exponent; for d = 1 this is the formula above exactly.

Known results used by the tests:

* :func:`double_well`, V = w⁴/4 − w²/2: minima w = ±1 with V'' = 2, so
  f'(±1) = 1 − 2η and the minima are stable for η < 1 with λ = ln|1 − 2η|. At η = 1
  they period-double into the 2-cycle p, q (p + q)² = 1 + 3/η, pq = 1/η, with
  multiplier f'(p) f'(q) = 9 − 2(1 + η)², hence λ = ½ ln|9 − 2(1 + η)²|; that cycle
  period-doubles at η = √5 − 1 ≈ 1.2361, the cascade accumulates near η ≈ 1.30
  (chaos, λ > 0, with periodic windows), the two wells' chaotic bands merge near
  η ≈ 1.6, and for η > 2 typical orbits escape to infinity (the invariant interval
  |w| ≤ √((2 + η)/η) is lost when 4(1 + η)³ > 27(2 + η)).
* :func:`quadratic`, V = a w²/2: f' = 1 − ηa everywhere, so λ = ln|1 − ηa| exactly;
  orbits escape for η > 2/a.
* :func:`logistic_potential`, V = w³/3 − w²/2: f(w) = (1 + η)w − ηw², conjugate (by
  w = (1 + η)x/η) to the logistic map x ↦ r x(1 − x) with r = 1 + η; at η = 3 (r = 4)
  λ = ln 2. The minimum w = 1 (V'' = 1) is stable for η < 2.

Orbits that leave the ball |w| ≤ ``escape_radius`` or stop being finite are flagged
``escaped``, frozen, and reported as NaN: they never crash a sweep and never enter
the averages of :func:`lyapunov_vs_eta`. Everything is ``vmap``-ped over η and the
initial conditions and compiled once per (potential, transient, keep, escape radius).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from gdchaos.core.errors import check
from gdchaos.core.precision import default_float

# --------------------------------------------------------------------------- potentials


def double_well(w: ArrayLike) -> jax.Array:
    """Double well V(w) = w⁴/4 − w²/2 (summed over components): minima ±1, V''(±1) = 2, V''(0) = −1.

    Example:
        >>> float(double_well(1.0)), float(jax.grad(double_well)(1.0)), float(jax.grad(jax.grad(double_well))(1.0))
        (-0.25, 0.0, 2.0)
    """
    w = jnp.asarray(w)
    return jnp.sum(w**4 / 4 - w**2 / 2)


def quadratic(w: ArrayLike, a: ArrayLike = 1.0) -> jax.Array:
    """Quadratic bowl V(w) = a w²/2 (summed over components): the GD map is linear, λ = ln|1 − ηa|.

    Bind other curvatures with ``functools.partial(quadratic, a=3.0)``.

    Example:
        >>> float(jax.grad(jax.grad(quadratic))(0.3, a=3.0))
        3.0
    """
    w = jnp.asarray(w)
    return jnp.sum(a * w**2 / 2)


def logistic_potential(w: ArrayLike) -> jax.Array:
    """Cubic V(w) = w³/3 − w²/2 whose GD map (1 + η)w − ηw² is the logistic map with r = 1 + η.

    Example:
        >>> eta = 3.0  # r = 4
        >>> w = 0.4
        >>> x = w * eta / (1 + eta)  # 0.3
        >>> round(float(w - eta * jax.grad(logistic_potential)(w)), 5), round(4 * x * (1 - x) * (1 + eta) / eta, 5)
        (1.12, 1.12)
    """
    w = jnp.asarray(w)
    return jnp.sum(w**3 / 3 - w**2 / 2)


POTENTIALS: dict[str, Callable] = {
    "double_well": double_well,
    "quadratic": quadratic,
    "logistic": logistic_potential,
}
"""Built-in potentials by name (the ``potential=`` option of ``python -m gdchaos.toymap``)."""


MINIMA: dict[str, float] = {"double_well": 1.0, "quadratic": 0.0, "logistic": 1.0}
"""A minimum w* of each built-in potential (double well: also −1, by symmetry)."""


def stability_limit(potential: str | Callable = "double_well", minimum: float | None = None, **kwargs: Any) -> float:
    """η = 2/V''(w*) above which the minimum w* is no longer a stable fixed point of GD (f'(w*) = 1 − ηV'' < −1).

    ``minimum`` defaults to :data:`MINIMA` for built-in names; keyword arguments are
    bound as in :func:`get_potential`. 1-D potentials only.

    Example:
        >>> stability_limit("double_well"), stability_limit("quadratic", a=4.0), stability_limit("logistic")
        (1.0, 0.5, 2.0)
    """
    if minimum is None:
        check(isinstance(potential, str) and potential in MINIMA,
              f"give the minimum w* of {potential!r} (minimum=...); it is known only for {sorted(MINIMA)}")
        minimum = MINIMA[potential]
    fn = get_potential(potential, **kwargs)
    curvature = float(jax.grad(jax.grad(fn))(jnp.asarray(minimum, jnp.result_type(float))))
    check(curvature > 0, f"V'' must be > 0 at the minimum w*={minimum}; got {curvature}")
    return 2.0 / curvature


def get_potential(potential: str | Callable = "double_well", **kwargs: Any) -> Callable:
    """A potential by name (keyword arguments are bound, e.g. ``a`` of ``quadratic``) or a callable as is.

    Example:
        >>> float(get_potential("quadratic", a=2.0)(1.0))
        1.0
    """
    if callable(potential):
        check(not kwargs, f"potential_kwargs apply to named potentials only; got {kwargs!r} with a callable")
        return potential
    check(
        isinstance(potential, str) and potential in POTENTIALS,
        f"unknown potential {potential!r}; choose one of {sorted(POTENTIALS)} or pass a function V(w)",
    )
    fn = POTENTIALS[potential]
    return functools.partial(fn, **kwargs) if kwargs else fn


# --------------------------------------------------------------------------- the map


def gd_map(potential: Callable) -> Callable:
    """The GD map of ``potential``: ``step(w, eta) -> (w − η ∇V(w), None)``.

    It has the ``step(x, hyper)`` form of :func:`gdchaos.analyses.lyapunov.tangent_map`.

    Example:
        >>> step = gd_map(double_well)
        >>> float(step(2.0, 0.5)[0])  # 2 − 0.5 (8 − 2)
        -1.0
    """
    grad = jax.grad(potential)

    def step(w, eta):
        return w - eta * grad(w), None

    return step


class Orbits(NamedTuple):
    """Post-transient orbits of GD on a potential, over an η grid × initial conditions.

    Attributes:
        eta: ``(n_eta,)`` learning rates.
        inits: ``(n_init,)`` or ``(n_init, d)`` initial conditions w_0 (shared by every η).
        points: ``(n_eta, n_init, keep)`` or ``(n_eta, n_init, keep, d)``: w_t for
            t = transient, ..., transient + keep − 1; NaN for escaped orbits.
        exponent: ``(n_eta, n_init)`` time average over those steps of the log-stretch
            ln‖Df(w_t) v_t‖ (= ln|1 − ηV''(w_t)| in 1-D); NaN for escaped orbits.
        escaped: ``(n_eta, n_init)`` True where the orbit left |w| ≤ escape_radius or
            became non-finite at any step.
    """

    eta: jax.Array
    inits: jax.Array
    points: jax.Array
    exponent: jax.Array
    escaped: jax.Array


class LyapunovCurve(NamedTuple):
    """λ(η) averaged over the initial conditions that stay bounded.

    Attributes:
        eta: ``(n_eta,)``.
        exponent: ``(n_eta,)`` mean over bounded orbits (NaN where all escaped).
        std: ``(n_eta,)`` standard deviation over bounded orbits.
        bounded_fraction: ``(n_eta,)`` fraction of initial conditions that stayed bounded.
        per_init: ``(n_eta, n_init)`` the exponent of every orbit (NaN if escaped).
    """

    eta: jax.Array
    exponent: jax.Array
    std: jax.Array
    bounded_fraction: jax.Array
    per_init: jax.Array


@functools.lru_cache(maxsize=32)
def _compiled(potential: Callable, transient: int, keep: int, escape_radius: float):
    step = gd_map(potential)

    def orbit(eta, w0):
        def one(carry, _):
            w, v, escaped = carry
            w_new, v_new = jax.jvp(lambda u: step(u, eta)[0], (w,), (v,))
            r = jnp.sqrt(jnp.sum(v_new**2))
            bad = ~jnp.all(jnp.isfinite(w_new)) | (jnp.sqrt(jnp.sum(w_new**2)) > escape_radius)
            escaped_new = escaped | bad
            w_next = jnp.where(escaped_new, w, w_new)
            v_next = jnp.where(escaped_new | ~(r > 0) | ~jnp.isfinite(r), v, v_new / jnp.where(r > 0, r, 1))
            return (w_next, v_next, escaped_new), (w, jnp.log(r), escaped)

        v0 = jnp.ones_like(w0) / jnp.sqrt(jnp.asarray(w0.size, w0.dtype))
        carry = (w0, v0, ~jnp.all(jnp.isfinite(w0)))
        if transient:
            carry, _ = jax.lax.scan(one, carry, None, length=transient)
        carry, (points, logs, _) = jax.lax.scan(one, carry, None, length=keep)
        escaped = carry[2]
        nan = jnp.asarray(jnp.nan, points.dtype)
        points = jnp.where(escaped, nan, points)
        exponent = jnp.where(escaped, nan, jnp.mean(logs))
        return points, exponent, escaped

    over_inits = jax.vmap(orbit, in_axes=(None, 0))
    return jax.jit(jax.vmap(over_inits, in_axes=(0, None)))


def _as_inits(inits, key, n_init, init_mean, init_std):
    if inits is not None:
        inits = jnp.asarray(inits, default_float())
        check(inits.ndim in (1, 2) and inits.shape[0] >= 1,
              f"inits must have shape (n_init,) or (n_init, d); got {inits.shape}")
        return inits
    check(isinstance(n_init, (int, np.integer)) and n_init >= 1, f"n_init must be an integer >= 1; got {n_init!r}")
    check(init_std >= 0, f"init_std must be >= 0; got {init_std}")
    mean = jnp.asarray(init_mean, default_float())
    check(mean.ndim <= 1, f"init_mean must be a scalar (1-D map) or a (d,) vector; got shape {mean.shape}")
    key = jax.random.key(0) if key is None else key
    return mean + init_std * jax.random.normal(key, (int(n_init), *mean.shape), mean.dtype)


DEFAULT_ETAS = np.round(np.arange(0.01, 2.0, 0.002), 6)
"""Default η grid: 0.01, 0.012, ..., 1.998 (the double well's whole route to chaos, before escape at η = 2)."""


def orbit_diagram(
    potential: str | Callable = double_well,
    etas: ArrayLike | None = None,
    n_init: int = 8,
    transient: int = 2000,
    keep: int = 200,
    key: jax.Array | None = None,
    inits: ArrayLike | None = None,
    *,
    init_mean: ArrayLike = 0.0,
    init_std: float = 0.1,
    escape_radius: float = 1e6,
) -> Orbits:
    r"""Iterate w ↦ w − η∇V(w) from every initial condition at every η; keep the post-transient orbit.

    Args:
        potential: V(w) as a function (scalar w for 1-D maps, (d,) for d-D) or a
            name in :data:`POTENTIALS`.
        etas: ``(n_eta,)`` learning rates (default :data:`DEFAULT_ETAS`).
        n_init: number of initial conditions w_0 ~ N(init_mean, init_std²) drawn with
            ``key`` (default ``jax.random.key(0)``); ignored when ``inits`` is given.
        transient: steps discarded before recording.
        keep: steps recorded (orbit points and log-stretches).
        inits: explicit initial conditions, ``(n_init,)`` or ``(n_init, d)``.
        init_mean, init_std: the Gaussian of the drawn initial conditions (the paper
            uses w_0 ~ N(0, 0.1)); a ``(d,)`` ``init_mean`` gives d-dimensional w.
        escape_radius: orbits with ‖w‖ above it (or non-finite) count as escaped.

    Returns:
        :class:`Orbits` with axes ``(eta, init, keep[, d])``.

    Example (the double well below and above the first period doubling at η = 1):
        >>> o = orbit_diagram(double_well, [0.9, 1.1], n_init=4, transient=3000, keep=8)
        >>> o.points.shape, count_distinct(o.points).tolist()
        ((2, 4, 8), [[1, 1, 1, 1], [2, 2, 2, 2]])
        >>> bool(jnp.allclose(jnp.abs(o.points[0]), 1.0)), bool(jnp.allclose(o.exponent[0], jnp.log(0.8)))
        (True, True)
    """
    potential = get_potential(potential)
    etas = jnp.asarray(DEFAULT_ETAS if etas is None else etas)
    check(etas.ndim == 1 and etas.size >= 1, f"etas must be a non-empty 1-D grid of learning rates; got shape {etas.shape}")
    check(bool(jnp.all(jnp.isfinite(etas))), "learning rates must be finite; remove inf/NaN from etas")
    check(isinstance(transient, (int, np.integer)) and transient >= 0, f"transient must be an integer >= 0; got {transient!r}")
    check(isinstance(keep, (int, np.integer)) and keep >= 1, f"keep must be an integer >= 1; got {keep!r}")
    check(escape_radius > 0, f"escape_radius must be > 0; got {escape_radius}")
    w0 = _as_inits(inits, key, n_init, init_mean, init_std)
    etas = etas.astype(w0.dtype)
    fn = _compiled(potential, int(transient), int(keep), float(escape_radius))
    points, exponent, escaped = fn(etas, w0)
    return Orbits(etas, w0, points, exponent, escaped)


def lyapunov_curve(orbits: Orbits) -> LyapunovCurve:
    """Average the per-orbit exponents over the bounded initial conditions at each η.

    Example:
        >>> o = Orbits(jnp.array([1.0]), jnp.zeros(2), jnp.zeros((1, 2, 1)), jnp.array([[0.5, jnp.nan]]), jnp.array([[False, True]]))
        >>> curve = lyapunov_curve(o)
        >>> float(curve.exponent[0]), float(curve.bounded_fraction[0])
        (0.5, 0.5)
    """
    per = orbits.exponent
    bounded = ~orbits.escaped
    n = jnp.sum(bounded, axis=1)
    # −∞ (a superstable orbit) is a valid exponent; only escaped orbits are excluded
    safe = jnp.where(bounded, per, 0.0)
    mean = jnp.where(n > 0, jnp.sum(safe, axis=1) / jnp.maximum(n, 1), jnp.nan)
    dev = jnp.where(bounded & jnp.isfinite(per), per - jnp.where(jnp.isfinite(mean), mean, 0.0)[:, None], 0.0)
    std = jnp.where(n > 0, jnp.sqrt(jnp.sum(dev**2, axis=1) / jnp.maximum(n, 1)), jnp.nan)
    return LyapunovCurve(orbits.eta, mean, std, n / per.shape[1], per)


def lyapunov_vs_eta(
    potential: str | Callable = double_well,
    etas: ArrayLike | None = None,
    n_init: int = 8,
    transient: int = 2000,
    steps: int = 2000,
    key: jax.Array | None = None,
    inits: ArrayLike | None = None,
    **kwargs: Any,
) -> LyapunovCurve:
    r"""λ(η) = ⟨(1/T) Σ_t ln|1 − ηV''(w_t)|⟩ over bounded initial conditions, T = ``steps`` after ``transient``.

    The derivative comes from ``jax.jvp`` of the map (exact). Other keyword arguments
    go to :func:`orbit_diagram`.

    Example (quadratic bowl, a = 1: λ = ln|1 − η| exactly; escape beyond η = 2):
        >>> curve = lyapunov_vs_eta(quadratic, [0.5, 1.5, 2.5], n_init=3, transient=0, steps=50)
        >>> [round(float(v), 6) for v in curve.exponent[:2]], round(float(jnp.log(0.5)), 6)
        ([-0.693147, -0.693147], -0.693147)
        >>> bool(jnp.isnan(curve.exponent[2])), curve.bounded_fraction.tolist()
        (True, [1.0, 1.0, 0.0])
    """
    check(isinstance(steps, (int, np.integer)) and steps >= 1, f"steps must be an integer >= 1; got {steps!r}")
    return lyapunov_curve(orbit_diagram(potential, etas, n_init, transient, steps, key, inits, **kwargs))


def count_distinct(points: ArrayLike, tol: float = 1e-6, vector: bool = False) -> jax.Array:
    """Number of distinct values along each orbit (last axis; with ``vector``, the first coordinate of d-D points).

    A periodic orbit of period p gives p; a chaotic one gives about ``keep``; an escaped
    (NaN) orbit gives 0. Two values closer than ``tol`` count as one.

    Example:
        >>> count_distinct(jnp.array([[1.0, -1.0, 1.0, -1.0], [0.5, 0.5, 0.5, jnp.nan]])).tolist()
        [2, 0]
    """
    points = jnp.asarray(points)
    if vector:
        points = points[..., 0]
    s = jnp.sort(points, axis=-1)
    gaps = jnp.sum(jnp.diff(s, axis=-1) > tol, axis=-1) + 1
    return jnp.where(jnp.any(jnp.isnan(points), axis=-1), 0, gaps)
