r"""SGD stability and regularity of an interpolating minimum over an η × B grid (``python -m gdchaos.minima``).

A small over-parameterized MSE problem (:func:`build_problem`, from data and model config
dicts as in ``conf/``) is fit to a global minimum θ* by full-batch GD (:func:`find_minimum`);
per mini-batch size B, :func:`evaluate_batch_size` computes over η

* λ(θ*), the exponent of the SGD random product on N(θ*) (:func:`gdchaos.analyses.curvature.stability.sgd_stability`),
* the regularity verdict of chemnitz2025 Def. 3.13 (:mod:`gdchaos.analyses.regularity`),
* optionally the fraction of SGD runs from θ* + δ that return (:func:`return_fraction`),

and :func:`to_dataset` / :func:`summary_table` lay the grid out as ``minima.nc`` / ``minima.csv``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from gdchaos.analyses import regularity as reg
from gdchaos.analyses.curvature.stability import sgd_stability
from gdchaos.analyses.regularity import normal_space
from gdchaos.core import data as data_lib
from gdchaos.core.errors import ConfigError, check
from gdchaos.core.losses import get_loss
from gdchaos.core.maps import supervised_loss
from gdchaos.core.tree import count_params
from gdchaos.experiments.results import dataset
from gdchaos.experiments.task import build_model

if TYPE_CHECKING:
    import jax
    import numpy as np
    import pandas as pd
    import xarray as xr

    from gdchaos.analyses.regularity import NormalSpace

__all__ = [
    "Empirical",
    "Problem",
    "build_problem",
    "evaluate_batch_size",
    "find_minimum",
    "fit_minimum",
    "residual",
    "return_fraction",
    "summary_table",
    "to_dataset",
]


class Problem(NamedTuple):
    """A small supervised MSE problem: ``loss_fn(params, x, y)``, ``apply(params, x) -> outputs``, initial parameters."""
    loss_fn: Callable
    apply: Callable
    params: Any
    x: Any
    y: Any
    n_outputs: int
    label: str


class Empirical(NamedTuple):
    """Settings of :func:`return_fraction`: ``n_perturb`` runs of ``steps`` SGD updates from θ* + δ, ‖δ‖ = ``radius``;
    returned: L(θ_T) ≤ ``decrease``·L(θ_0) with ‖θ_t − θ*‖ ≤ ``escape`` throughout."""
    n_perturb: int = 8
    radius: float = 1e-6
    steps: int = 3000
    decrease: float = 1e-2
    escape: float = 1e-2


def build_problem(
    data: Mapping[str, Any],
    model: Mapping[str, Any],
    *,
    loss: str = "mse",
    init_seed: int = 0,
    batch_sizes: Sequence[int] = (),
) -> Problem:
    """The :class:`Problem` of a data config (``name`` and its options) and a model config (as in ``conf/model``).

    Checks that it is over-parameterized (more parameters than q·n fit constraints) and that
    every B in ``batch_sizes`` is below the number of training samples (B = n is GD).

    Example:
        >>> p = build_problem({"name": "synthetic", "n_samples": 8, "n_features": 2, "n_classes": 2, "n_test": 2},
        ...                   {"hidden": [8], "activation": "tanh"})
        >>> p.label, p.x.shape, p.n_outputs
        ('synthetic/mlp-2-8-2-tanh/mse', (6, 2), 2)
    """


    options = dict(data)
    name = options.pop("name")
    ds = data_lib.load(name, images=False, **options)
    net, model_name = build_model(dict(model), ds.x_train.shape[1:], ds.n_classes)
    x = jnp.asarray(ds.x_train, jnp.float64).reshape(len(ds.x_train), -1)
    y = jnp.asarray(ds.y_train)
    params = net.init(jax.random.key(init_seed))
    n_params = count_params(params)
    constraints = ds.n_classes * len(ds.x_train)
    check(n_params > constraints,
          f"the model has {n_params} parameters for q·n = {ds.n_classes}·{len(ds.x_train)} = {constraints} fit constraints; "
          "an interpolating manifold needs more parameters: widen model.hidden or reduce data.n_samples")
    for b in batch_sizes:
        check(b < len(ds.x_train), f"batch_sizes must be < the {len(ds.x_train)} training samples (B = n is GD); got {b}")
    loss_fn = supervised_loss(net.apply, get_loss(loss))
    return Problem(loss_fn, net.apply, params, x, y, ds.n_classes, f"{name}/{model_name}/{loss}")


def residual(apply: Callable, params: Any, x: Any, y: Any) -> float:
    """max_i |f(x_i) − e_{y_i}|: how far the outputs are from the one-hot targets of the MSE loss.

    Example:
        >>> import jax.numpy as jnp
        >>> residual(lambda p, x: x * p, 1.0, jnp.array([[1.0, 0.0], [0.0, 0.5]]), jnp.array([0, 1]))
        0.5
    """
    out = apply(params, x)
    return float(jnp.max(jnp.abs(out - jnp.eye(out.shape[-1], dtype=out.dtype)[y])))


def fit_minimum(problem: Problem, eta: float, steps: int, tol: float, chunk: int = 2000) -> tuple[Any, float, int]:
    """Full-batch GD θ ← θ − η∇L(θ) to machine precision: on while max_i |f(x_i) − e_{y_i}| > ``tol`` or still
    halving per ``chunk`` updates, at most ``steps`` updates.

    Returns ``(θ*, residual, updates)``.
    """
    loss_fn, apply, params, x, y = problem.loss_fn, problem.apply, problem.params, problem.x, problem.y
    flat, unravel = ravel_pytree(params)

    @jax.jit
    def advance(v, eta):
        def body(v, _):
            return v - eta * jax.grad(lambda u: loss_fn(unravel(u), x, y))(v), None

        return jax.lax.scan(body, v, None, length=chunk)[0]

    done, res, previous = 0, residual(apply, params, x, y), math.inf
    v = flat
    while done < steps and (res > tol or res < 0.5 * previous):  # on to roundoff: until it stops improving
        v = advance(v, jnp.asarray(eta, flat.dtype))
        done += chunk
        previous, res = res, residual(apply, unravel(v), x, y)
        if not math.isfinite(res):
            raise ConfigError(f"the GD fit diverged at fit.eta={eta:g}; lower fit.eta (or use fit.eta=auto)")
    return unravel(v), res, done


def find_minimum(problem: Problem, eta: float | str, steps: int, tol: float) -> tuple[Any, float, int, float]:
    """θ* by :func:`fit_minimum` at ``eta`` (``"auto"``: 1/λ_max at the initial parameters); a one-line error
    when it does not interpolate to ``tol``.

    Returns ``(θ*, residual, updates, η_fit)``.
    """


    loss_fn, x, y = problem.loss_fn, problem.x, problem.y
    if eta == "auto":
        lam0 = float(np.max(normal_space(lambda p: loss_fn(p, x, y), problem.params).eigenvalues))
        check(math.isfinite(lam0) and lam0 > 0, f"the Hessian at the initial parameters has λ_max = {lam0}; set fit.eta")
        fit_eta = 1.0 / lam0
    else:
        fit_eta = float(eta)
    theta, res, updates = fit_minimum(problem, fit_eta, steps, tol)
    check(res <= tol, f"GD did not reach an interpolating minimum: residual {res:.2e} > fit.tol={tol:g} "
                      f"after {updates} updates at η={fit_eta:.3g}; raise fit.steps, change fit.eta or init_seed, "
                      "or widen model.hidden")
    return theta, res, updates, fit_eta


def return_fraction(
    loss_fn: Callable, params: Any, x: Any, y: Any, batch_size: int, etas: Sequence[float], settings: Empirical, seed: int
) -> jax.Array:
    """Fraction of SGD runs θ_{t+1} = θ_t − η∇L_{Ξ_t}(θ_t) from θ* + δ (‖δ‖ = radius, random direction) that come back:
    L(θ_T) ≤ ``decrease``·L(θ_0) with ‖θ_t − θ*‖ ≤ ``escape`` throughout (:class:`Empirical`), per η.

    Ξ_t are uniform B-subsets (drawn up front; the same sequences for every η).

    Example (x = I₂, θ* = 0, B = 1: each step multiplies one coordinate by 1 − η):
        >>> import jax.numpy as jnp
        >>> lsq = lambda p, x, y: 0.5 * jnp.mean((x @ p - y) ** 2)
        >>> frac = return_fraction(lsq, jnp.zeros(2), jnp.eye(2), jnp.zeros(2), 1, [0.5, 2.5], Empirical(3, 1e-6, 200), 0)
        >>> [float(f) for f in frac]
        [1.0, 0.0]
    """
    emp = settings
    flat, unravel = ravel_pytree(params)
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(emp.n_perturb, flat.size))
    deltas = jnp.asarray(emp.radius * u / np.linalg.norm(u, axis=1, keepdims=True), flat.dtype)
    batches = jnp.asarray(np.argsort(rng.random((emp.n_perturb, emp.steps, x.shape[0])), axis=-1)[..., :batch_size])

    def loss(v, xb, yb):
        return loss_fn(unravel(v), xb, yb)

    def one(eta, delta, idx):
        def body(carry, i):
            v, far = carry
            v = v - eta * jax.grad(loss)(v, x[i], y[i])
            dist = jnp.linalg.norm(v - flat)
            return (v, jnp.maximum(far, jnp.where(jnp.isfinite(dist), dist, jnp.inf))), None

        v0 = flat + delta
        (v, far), _ = jax.lax.scan(body, (v0, jnp.asarray(0.0, flat.dtype)), idx)
        l0, l1 = loss(v0, x, y), loss(v, x, y)
        return jnp.isfinite(l1) & (far <= emp.escape) & (l1 <= emp.decrease * l0)

    runs = jax.jit(jax.vmap(jax.vmap(one, (None, 0, 0)), (0, None, None)))(jnp.asarray(etas, flat.dtype), deltas, batches)
    return jnp.mean(runs.astype(flat.dtype), axis=1)


def evaluate_batch_size(
    problem: Problem,
    theta: Any,
    space: NormalSpace,
    batch_size: int,
    etas: Sequence[float],
    key: jax.Array,
    *,
    seed: int = 0,
    index: int = 0,
    stability_steps: int = 3000,
    stability_transient: int = 200,
    empirical: Empirical | None = None,
    max_batches: int = 256,
    check_id_minus_a: bool = False,
    powers: Sequence[int] | None = (),
    word_length: int = 2,
    max_words: int = 64,
    max_orbit: int = 24,
    rank_rtol: float = 1e-8,
    inv_rtol: float = 1e-8,
    zero_rtol: float | None = None,
) -> dict:
    """λ (vmapped over η), the regularity check per η and the empirical return fraction for one B.

    The keyword arguments after ``empirical`` are those of ``conf/minima.yaml``'s ``regularity``
    group (:func:`gdchaos.analyses.regularity.minimum_regularity`); ``empirical=None`` skips the
    SGD runs (NaN return fractions); they draw with seed ``seed + index``. Returns arrays
    ``exponent``, ``sgd_stable``, ``return_fraction`` (over η), one dict per η in ``rows``
    (verdict, margins, dimensions) and the batch-Hessian sampling (``n_batches``, ``leak``, ...).
    """


    loss_fn, x, y = problem.loss_fn, problem.x, problem.y
    zero_rtol = None if zero_rtol is None else float(zero_rtol)
    powers = tuple(int(m) for m in (powers or ()))
    bh = reg.batch_hessians(loss_fn, theta, x, y, batch_size, max_batches=max_batches, seed=seed, rtol=zero_rtol,
                            space=space)
    stab = jax.vmap(lambda e: sgd_stability(loss_fn, theta, x, y, e, batch_size, steps=stability_steps,
                                            transient=stability_transient, key=key, rtol=zero_rtol))(jnp.asarray(etas))
    returns = (np.asarray(return_fraction(loss_fn, theta, x, y, batch_size, etas, empirical, seed + index))
               if empirical is not None else np.full(len(etas), np.nan))
    rows = []
    for eta, lam in zip(etas, np.asarray(stab.exponent)):
        r = reg.minimum_regularity(loss_fn, theta, x, y, float(eta), batch_size, check_id_minus_a=check_id_minus_a,
                                   powers=powers, word_length=word_length, max_words=max_words, max_orbit=max_orbit,
                                   rank_rtol=float(rank_rtol), inv_rtol=float(inv_rtol), rtol=zero_rtol, seed=seed,
                                   exponent=False, hessians=bh)
        rows.append({"verdict": r.verdict, "regular": r.regular, "theorem": reg.theorem_statement(r.verdict, float(lam)),
                     "a_margin": r.check.a_margin, "id_minus_a_margin": r.check.id_minus_a_margin,
                     "algebra_dim": r.check.algebra_dim, "word_length": r.check.word_length, "orbit": r.check.orbit,
                     "power_dim": [dict(r.check.power_dims).get(m, -1) for m in powers]})
    return {"exponent": np.asarray(stab.exponent), "sgd_stable": np.asarray(stab.stable), "return_fraction": returns,
            "rows": rows, "n_batches": len(bh.batches), "n_batches_total": bh.n_total, "sampled": bh.sampled,
            "leak": float(np.max(bh.leak))}


def to_dataset(
    batch_sizes: Sequence[int],
    etas: np.ndarray,
    critical: float,
    powers: Sequence[int],
    results: Sequence[dict],
    gd: np.ndarray,
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """The grid (one :func:`evaluate_batch_size` result per B) as a results Dataset with dims ``(batch_size, eta[, power])``.

    ``gd`` is ρ(I − ηH|_N) per η (stored as ``gd_exponent`` = ln ρ); ``critical`` = 2/λ_max gives
    ``eta_over_critical``; ``attrs`` join the provenance (:func:`gdchaos.experiments.results.dataset`).
    """


    dims = ("batch_size", "eta")

    def grid(key, dtype=float):
        return np.array([[row[key] for row in r["rows"]] for r in results], dtype=dtype)

    data = {k: (dims, np.array([r[k] for r in results], float)) for k in ("exponent", "return_fraction")}
    data["sgd_stable"] = (dims, np.array([r["sgd_stable"] for r in results], np.int64))
    data.update({k: (dims, grid(k)) for k in ("a_margin", "id_minus_a_margin")})
    data.update({k: (dims, grid(k, np.int64)) for k in ("regular", "algebra_dim", "word_length", "orbit")})
    data["power_dim"] = ((*dims, "power"), grid("power_dim", np.int64).reshape(len(results), len(etas), len(powers)))
    data["verdict"] = (dims, grid("verdict", object).astype(str))
    data["theorem"] = (dims, grid("theorem", object).astype(str))
    data.update({k: (("batch_size",), np.array([r[k] for r in results], np.int64))
                 for k in ("n_batches", "n_batches_total", "sampled")})
    data["leak"] = (("batch_size",), np.array([r["leak"] for r in results]))
    data["gd_exponent"] = (("eta",), np.log(gd))
    ds = dataset(
        data,
        coords={"batch_size": np.asarray(batch_sizes), "eta": np.asarray(etas),
                "eta_over_critical": ("eta", np.asarray(etas) / critical), "power": np.asarray(powers, np.int64)},
        attrs=attrs,
        descriptions={
            "exponent": "λ(θ*) of the SGD random product on N(θ*) (sgd_stability)",
            "gd_exponent": "ln ρ(I − ηH|_N): full-batch GD",
            "regular": "1 where the Def. 3.13 check says regular",
            "return_fraction": "fraction of SGD runs from θ* + δ that return (NaN: not run)",
            "power_dim": "dimension of the algebra of the m-th powers (d² = n_normal²: irreducible)",
        },
    )
    for name in ("exponent", "gd_exponent"):
        ds[name].attrs["units"] = "nat / step"
    return ds


SUMMARY_COLUMNS = ("batch_size", "eta", "eta_over_critical", "exponent", "gd_exponent", "sgd_stable", "regular", "verdict",
                   "a_margin", "id_minus_a_margin", "algebra_dim", "return_fraction", "n_batches", "n_batches_total")
"""The leading columns of :func:`summary_table`; ``power_dim_<m>`` per power follow."""


def summary_table(ds: xr.Dataset) -> pd.DataFrame:
    """One row per (B, η) (``minima.csv``), numbers formatted as written: 6 significant digits, margins and
    return fractions 3."""
    import pandas as pd

    rows = []
    for b in ds.batch_size.values:
        s = ds.sel(batch_size=b)
        for j in range(ds.sizes["eta"]):
            t = s.isel(eta=j)
            row = [int(b), f"{float(t.eta):.6g}", f"{float(t.eta_over_critical):.6g}", f"{float(t.exponent):.6g}",
                   f"{float(t.gd_exponent):.6g}", int(t.sgd_stable), int(t.regular), str(t.verdict.values),
                   f"{float(t.a_margin):.3g}", f"{float(t.id_minus_a_margin):.3g}", int(t.algebra_dim),
                   f"{float(t.return_fraction):.3g}", int(s.n_batches), int(s.n_batches_total)]
            rows.append(row + [int(v) for v in t.power_dim.values])
    return pd.DataFrame(rows, columns=[*SUMMARY_COLUMNS, *(f"power_dim_{int(m)}" for m in ds.power.values)])
