"""Weight and time-series diagnostics of Iris training (danovski2024 §3–4), figures into a folder.

    python examples/diagnostics_iris.py [--out outputs/diagnostics] [--quick]

Writes:
    regime_gallery.png   loss and ‖θ‖ of several ICs at η = 0.01, 1, 5 (Figs. 3, 7, 9)
    ablation.png         ΔL when each weight of the η = 0.01 solution is set to 0 (Fig. 5, left)
    displacement.png     Δw vs D_w per weight along the η = 0.01 trajectory (Fig. 5, right)
    loss_acf.png         ACF of an η = 5 loss series with the 95% shuffled-surrogate band (Fig. 10)
    kantz.png            Kantz S(k), per-point slopes and their significance for that series (Fig. 11)
    post_learning.png    d(t) of ε = 1e-8 perturbations made after t₀ updates at η = 0.01 (Fig. 6)
    summary.json         the numbers printed below

``--quick`` shrinks every run (for tests); the defaults take well under a minute on two CPU cores.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import jax
import numpy as np

import gdchaos
from gdchaos.figures import diagnostics as dplots
from gdchaos.analyses import timeseries
from gdchaos.analyses import weights
from gdchaos.experiments.task import build_task

SIZES = {
    # gallery: updates, ICs; η = 5 loss window; post-learning: t0, updates after, fit windows;
    # ACF: lags, surrogates; Kantz: surrogates, references
    "full": dict(steps=2000, n_ic=6, window=1000, t0=4000, post_steps=1000, post_windows={},
                 max_lag=50, acf_surrogates=1000, kantz_surrogates=19, n_references=1000),
    "quick": dict(steps=300, n_ic=2, window=200, t0=100, post_steps=30, post_windows={"starts": [0], "lengths": [20]},
                  max_lag=20, acf_surrogates=100, kantz_surrogates=0, n_references=200),
}


def _number(v: float) -> float | None:
    """JSON has no NaN: not-computed values become null."""
    return float(v) if np.isfinite(v) else None


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs/diagnostics", help="output directory (created if missing)")
    parser.add_argument("--quick", action="store_true", help="tiny runs, for tests")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    size = SIZES["quick" if args.quick else "full"]
    dpi = 60 if args.quick else 110
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    gdchaos.enable_float64()  # ε = 1e-8 perturbations need float64
    t_start = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str) -> None:
        timings[name] = round(time.perf_counter() - t_start - sum(timings.values()), 2)

    key_gallery, key_post, key_acf, key_kantz = jax.random.split(jax.random.key(args.seed), 4)
    task = build_task({"name": "iris"}, {"hidden": [10]}, {"name": "sgd"})
    x, y = task.dataset.x_train, task.dataset.y_train
    summary: dict = {"task": task.name, "quick": args.quick}

    # Regime gallery: the same ICs at η = 0.01, 1, 5.
    gallery = weights.regime_gallery(task, (0.01, 1.0, 5.0), n_ic=size["n_ic"], steps=size["steps"],
                                     key=key_gallery, every=1)
    fig = dplots.plot_regime_gallery(gallery.eta, gallery.trajectory, labels=gallery.labels, title=gallery.title)
    fig.savefig(out / "regime_gallery.png", dpi=dpi)
    lap("gallery")
    summary["final_loss"] = {f"{e:g}": gallery.trajectory.loss[i, :, -1].tolist() for i, e in enumerate(gallery.eta)}

    # Weight-level view of the η = 0.01 trajectory of IC 0 (every update of all 83 parameters).
    path = jax.tree.map(lambda a: a[0, 0], gallery.trajectory.params)
    disp = weights.displacement_vs_path(path)
    dplots.plot_displacement(disp, title="η = 0.01, ic 0").savefig(out / "displacement.png", dpi=dpi)
    final = jax.tree.map(lambda a: a[0, 0], gallery.trajectory.final)
    importance = weights.ablation_importance(lambda p: task.loss_fn(p, x, y), final)
    dplots.plot_ablation(importance, title=f"ablation after {size['steps']} updates at η = 0.01").savefig(
        out / "ablation.png", dpi=dpi)
    kernel = np.concatenate([np.ravel(v["kernel"]) for v in importance.values()])
    summary["ablation"] = {"max_dL": float(kernel.max()), "median_dL": float(np.median(kernel))}
    lap("weights")

    # η = 5: the most random-like stretch of loss (Fig. 10): over windows of every IC, the one
    # whose ACF at lags 1..6 is smallest in magnitude (laminar, periodic stretches have |ρ| near 1).
    loss5 = np.asarray(gallery.trajectory.loss[-1])
    window = size["window"]
    starts = np.arange(100, loss5.shape[1] - window + 1, window // 4)
    windows = np.stack([loss5[:, s:s + window] for s in starts], axis=1)  # (ic, start, window)
    low_lags = np.max(np.abs(np.asarray(timeseries.autocorrelation(windows, 6))[..., 1:]), axis=-1)
    low_lags = np.where(np.all(np.isfinite(windows), axis=-1), low_lags, np.inf)
    pick, start = np.unravel_index(np.argmin(low_lags), low_lags.shape)
    pick, start = int(pick), int(starts[start])
    x5 = loss5[pick, start:start + window]
    where = f"η = 5, ic {pick}, updates {start}..{start + window - 1}"
    acf = np.asarray(timeseries.autocorrelation(x5, size["max_lag"]))
    band = timeseries.surrogate_band(x5, size["max_lag"], size["acf_surrogates"], key_acf)
    dplots.plot_acf(acf, band, title=f"{where}: loss ACF").savefig(out / "loss_acf.png", dpi=dpi)
    outside = (acf > np.asarray(band.upper)) | (acf < np.asarray(band.lower))
    summary["acf"] = {"ic": pick, "start": start, "window": window, "max_lag": size["max_lag"],
                      "lags_outside_band": int(outside[1:].sum())}

    # Kantz on the same stretch (Fig. 11); radius: 5% of the series' standard deviation.
    radius = 0.05 * float(np.std(x5))
    res = timeseries.kantz(x5, radius, dim=2, max_steps=10, fit_range=(1, 5), n_references=size["n_references"],
                           n_surrogates=size["kantz_surrogates"], key=key_kantz)
    dplots.plot_kantz(res, title=f"Kantz on the loss series ({where})").savefig(out / "kantz.png", dpi=dpi)
    summary["kantz"] = {"radius": radius, "exponent": res.exponent, "p_value": res.p_value,
                        "surrogate_p_value": _number(res.surrogate_p_value), "significant_fraction": res.significant_fraction}
    lap("acf_kantz")

    # Post-learning stability at η = 0.01: perturb after t0 updates (Fig. 6).
    post = weights.post_learning(task.tmap, task.model.init, t0=size["t0"], eta=[0.01], eps=[1e-8], n_ic=3,
                                 n_perturb=5, steps=size["post_steps"], key=key_post, hyper=task.hyper)
    dplots.plot_post_learning(post).savefig(out / "post_learning.png", dpi=dpi)
    d = post.records["distance"][0, 0, :, 1:]
    fe = weights.post_learning_exponents(post, **size["post_windows"])
    summary["post_learning"] = {
        "t0": post.t0,
        "distance_end_over_start": (np.nanmean(d[..., -1], axis=-1) / np.nanmean(d[..., 0], axis=-1)).tolist(),
        "finite_exponent": fe.exponent[0, 0].tolist(),
        "kept": fe.kept[0, 0].tolist(),
    }
    lap("post_learning")
    summary["seconds"] = timings
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
