# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
#   accelerator: TPU
#   colab:
#     provenance: []
# ---

# %% [markdown]
# # gdchaos on a Colab TPU: Lyapunov exponents of gradient descent over a learning-rate sweep
#
# Training is a map θ_{t+1} = θ_t − η ∇L(θ_t) on weight space. Its maximal Lyapunov
# exponent λ_max(η) says whether nearby training trajectories converge (λ < 0) or separate
# exponentially (λ > 0, chaotic training). This notebook measures the top-k exponents
# with the **tangent method**: it propagates k tangent vectors through the Jacobian of the
# training step (``jax.linearize``) and re-orthonormalizes them with QR every step. That is
# the exact ε → 0 limit of the ε-ball divergence experiments, and it works in float32, so
# it runs on TPUs, which have no float64.
#
# The whole (η × initial condition) grid runs as **one** vectorized, compiled JAX program.
#
# Open ``examples/colab_tpu.ipynb`` in Colab (File → Open notebook → GitHub, or
# ``https://colab.research.google.com/github/<owner>/gdchaos/blob/main/examples/colab_tpu.ipynb``);
# it asks for a TPU runtime (else *Runtime → Change runtime type → TPU*); run all cells. The
# notebook is generated from ``examples/colab_tpu.py`` (jupytext percent format; a test keeps
# them in sync: after editing the ``.py``, run ``python tests/test_examples.py``). The same
# code runs on a laptop CPU (it says so and carries on); ``GDCHAOS_QUICK=1`` shrinks it to a
# few seconds:
#
#     GDCHAOS_QUICK=1 python examples/colab_tpu.py

# %% Knobs: everything that sets the size of the run
import os

QUICK = os.environ.get("GDCHAOS_QUICK", "0") == "1"  # tiny run (tests, CPU smoke check)
REPO_URL = os.environ.get("GDCHAOS_REPO_URL", "https://github.com/<owner>/gdchaos")  # where gdchaos lives
DATA = os.environ.get("GDCHAOS_DATA", "digits")  # digits (shipped, offline) | mnist | fashion_mnist (TFDS)
OUT = os.environ.get("GDCHAOS_OUT", "colab_tpu_out")  # figures and results go here

if QUICK:
    ETA = [0.1, 2.0, 10.0]
    N_IC, STEPS, K, SUBSET = 2, 40, 2, 500
else:
    ETA = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0, 12.5, 15.0, 17.5, 20.0]
    N_IC, STEPS, K, SUBSET = 16, 1000, 8, 10000

# %% Install gdchaos (Colab only; Colab's TPU runtime ships JAX with TPU support)
import importlib.util
import subprocess
import sys

IN_COLAB = "google.colab" in sys.modules
if IN_COLAB and importlib.util.find_spec("gdchaos") is None:
    # the [tfds] extra brings tensorflow-datasets for MNIST / Fashion-MNIST
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"gdchaos[tfds] @ git+{REPO_URL}"], check=True)

# %% Which accelerator do we have?
import jax

platform = jax.devices()[0].platform
ON_TPU = platform == "tpu"
if ON_TPU:
    print(f"TPU: {jax.device_count()} cores ({jax.devices()[0].device_kind})")
else:
    print(
        f"No TPU found (JAX backend: {platform}); running the same code on {platform.upper()}. "
        "In Colab: Runtime → Change runtime type → TPU, then run all cells again."
    )
print("float64 enabled:", jax.config.jax_enable_x64, "(the tangent method does not need it)")

# %% The task: an MLP trained by full-batch gradient descent
from gdchaos.experiments.task import build_task

if DATA == "digits":
    data_cfg = {"name": "digits"}  # 8x8 digits, pixels in [0, 1]: the offline stand-in for MNIST
else:  # MNIST-like TFDS sets: downloaded once (Colab has a network), pixels in [0, 1]
    data_cfg = {"name": DATA, "subset": SUBSET, "download": True, "dtype": "float32"}
task = build_task(data_cfg, {"hidden": [64], "activation": "tanh"}, {"name": "sgd"})  # N(0, 1) weights
print(task.name, "| training set:", task.dataset.x_train.shape)

# %% The η sweep: top-K tangent Lyapunov exponents, float32, one compiled program
from gdchaos.experiments.tangent import tangent_sweep

ds = tangent_sweep(task, eta=ETA, n_ic=N_IC, steps=STEPS, k=K, progress=not QUICK)
print(f"compile {ds.attrs['tangent_compile_seconds']:.1f} s, run {ds.attrs['tangent_run_seconds']:.1f} s "
      f"on {ds.attrs['backend']} ({ds.attrs['dtype']})")
for eta, lam, std in zip(ds.eta.values, ds.lambda_max_tangent.values, ds.lambda_max_tangent_std.values):
    print(f"eta = {eta:8.4f}   lambda_max = {lam:+.4f} ± {std:.4f} nat/update")

# %% The figure: λ_max(η) and the spectrum for a few η
from pathlib import Path



from gdchaos.experiments import results
from gdchaos.figures.sweep import tangent_figure

Path(OUT).mkdir(parents=True, exist_ok=True)
fig = tangent_figure(ds)
fig.savefig(Path(OUT) / "tangent.png", dpi=120)
results.save(ds, OUT)  # results.nc (reload with gdchaos.experiments.results.load) and summary.csv
try:
    display(fig)  # noqa: F821 -- defined in notebooks
    import matplotlib.pyplot as plt

    plt.close(fig)  # shown once: the notebook's inline backend would draw it again at the end of the cell
except NameError:
    print("figure:", Path(OUT) / "tangent.png")

# %% [markdown]
# ## Why the finite-ε method is refused here at ε = 1e-8
#
# The finite-ε method perturbs every weight by U(−ε, ε) and follows the distance between
# trajectories. float32 has about 7 significant digits: next to a weight of size 1 the
# spacing of float32 numbers is 1.2e-7, so a perturbation of 1e-8 mostly **rounds away**
# and the "perturbed" network is the reference network itself. gdchaos therefore runs
# the finite-ε method in float64 whenever ε < 1e-4, and refuses it where float64 is
# unavailable (TPU) or switched off, with the fix in the message: use the tangent method
# (above), or raise ε.

# %% How many weights a 1e-8 perturbation leaves unchanged in float32
import numpy as np

rng = np.random.default_rng(0)
w = rng.normal(size=100_000).astype(np.float32)
w_perturbed = (w.astype(np.float64) + rng.uniform(-1e-8, 1e-8, size=w.size)).astype(np.float32)
print(f"float32: {np.mean(w_perturbed == w):.0%} of N(0, 1) weights are unchanged by a 1e-8 perturbation")

# %% The float64 guard refuses the finite-ε method at an ε of 1e-8
import gdchaos
from gdchaos.core.errors import PrecisionError
from gdchaos.experiments.finite import finite_sweep

if ON_TPU:
    try:
        gdchaos.enable_float64()
    except PrecisionError as err:
        print("enable_float64() on TPU:", err)
try:  # float32 arrays here (x64 off), as on every TPU
    finite_sweep(task, eta=[1.0], eps=[1e-8], n_ic=2, n_perturb=2, steps=60, starts=[0], lengths=[30], progress=False)
    print("finite-eps sweep ran (float64 is on)")
except PrecisionError as err:
    print("refused:", err)
