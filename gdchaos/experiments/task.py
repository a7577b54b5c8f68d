"""A learning task assembled from config pieces: dataset, model, training map, observer."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax.numpy as jnp

from gdchaos.analyses.training_time import DEFAULT_TARGETS
from gdchaos.core import data as data_lib
from gdchaos.core.data import Dataset
from gdchaos.core.errors import check
from gdchaos.core.losses import accuracy, get_loss
from gdchaos.core.maps import TrainingMap, from_optax, supervised_loss
from gdchaos.core.models import Model, cnn, mlp
from gdchaos.experiments.optimizers import optimizer

MODEL_KINDS = ("mlp", "cnn")
IMAGE_MODELS = ("cnn",)
"""Model kinds that read ``(n, H, W, C)`` images; the others get flattened inputs."""


class Task(NamedTuple):
    """Everything an ensemble needs about what is learned and how.

    Attributes:
        dataset: host arrays.
        model: ``(init, apply)``.
        tmap: the training map on the training set.
        observe: ``observe(params) -> {"accuracy": test accuracy}``.
        loss_fn: ``loss_fn(params, x, y)``.
        accuracy_target: default test-accuracy target for τ.
        hyper: fixed hyperparameters for every step (e.g. ``{"l2": 1e-3}``).
        name: e.g. ``iris/mlp-4-10-3-sigmoid/sgd``.
        train_loss: ``train_loss(params)``, the full-batch training loss (one function per
            task, so programs built on it compile once); None: from ``loss_fn`` and the data.
    """

    dataset: Dataset
    model: Model
    tmap: TrainingMap
    observe: Callable
    loss_fn: Callable
    accuracy_target: float
    hyper: dict
    name: str
    train_loss: Callable | None = None


def wants_images(model_cfg: dict) -> bool:
    """Whether the model config reads ``(n, H, W, C)`` images (``kind: cnn``) rather than flat vectors."""
    return dict(model_cfg).get("kind", "mlp") in IMAGE_MODELS


def build_model(cfg: dict, input_shape: int | Sequence[int], n_out: int) -> tuple[Model, str]:
    """Model and its label from a config dict (as in ``conf/model``).

    ``kind: mlp``: ``hidden`` widths (an entry ``input`` means the input size, for square
    layers), ``activation``, ``init``, ``weight_std``, ``use_bias``, ``output_bias``.
    ``kind: cnn``: ``channels``, ``hidden``, ``kernel_size``, ``pool``, ``activation``,
    ``init``, ``weight_std``, ``use_bias``. ``input_shape`` is the number of input
    features (MLP) or the ``(H, W, C)`` image shape (CNN).

    Example:
        >>> build_model({"hidden": ["input"], "activation": "tanh", "use_bias": False}, 6, 2)[1]
        'mlp-6-6-2-tanh'
        >>> build_model({"kind": "cnn"}, (28, 28, 1), 10)[1]
        'cnn-8-16-relu'
    """
    cfg = dict(cfg)
    kind = cfg.pop("kind", "mlp")
    check(kind in MODEL_KINDS, f"unknown model kind {kind!r}; choose one of {list(MODEL_KINDS)}")
    shape = (int(input_shape),) if isinstance(input_shape, (int, float)) else tuple(int(s) for s in input_shape)
    n_in = 1
    for s in shape:
        n_in *= s
    if kind == "cnn":
        cfg.setdefault("activation", "relu")
        cfg.setdefault("channels", [8, 16])
        model = cnn(shape, n_out, **cfg)
        return model, f"cnn-{'-'.join(str(int(c)) for c in cfg['channels'])}-{cfg['activation']}"
    hidden = [_width(h, n_in) for h in cfg.pop("hidden", [10])]
    sizes = [n_in, *hidden, n_out]
    model = mlp(sizes, **cfg)
    return model, f"mlp-{'-'.join(map(str, sizes))}-{cfg.get('activation', 'sigmoid')}"


def _width(h, n_in: int) -> int:
    if isinstance(h, str):
        check(h == "input", f"hidden widths are positive integers or 'input' (= the input size); got {h!r}")
        return n_in
    return int(h)


def build_task(data_cfg: dict, model_cfg: dict, optimizer_cfg: dict, loss: str = "cross_entropy") -> Task:
    """Assemble a :class:`Task` from plain dicts (as in ``conf/data``, ``conf/model``, ``conf/optimizer``).

    ``optimizer_cfg``: ``name`` (any name of :mod:`gdchaos.experiments.optimizers`: an optax
    alias, ``cgd`` or one you registered), ``batch_size`` (None: full batch), ``l2``,
    ``kwargs`` (per-step hyperparameters of the optimizer) and ``options`` (arguments of an
    optimizer builder such as ``cgd``'s ``which``, ``every``, ``base``).

    Example:
        >>> task = build_task({"name": "iris"}, {"hidden": [10]}, {"name": "sgd"})
        >>> task.name
        'iris/mlp-4-10-3-sigmoid/sgd'
    """
    data_cfg, optimizer_cfg = dict(data_cfg), dict(optimizer_cfg)
    name = data_cfg.pop("name")
    images = wants_images(model_cfg)
    ds = data_lib.load(name, images=images, **data_cfg)
    model, model_name = build_model(model_cfg, ds.x_train.shape[1:], ds.n_classes)
    dtype = jnp.result_type(float)
    x, y = jnp.asarray(ds.x_train, dtype), jnp.asarray(ds.y_train)
    x_test, y_test = jnp.asarray(ds.x_test, dtype), jnp.asarray(ds.y_test)
    loss_fn = supervised_loss(model.apply, get_loss(loss))
    opt_name = optimizer_cfg.pop("name", "sgd")
    batch_size = optimizer_cfg.pop("batch_size", None)
    l2 = float(optimizer_cfg.pop("l2", 0.0) or 0.0)
    kwargs = dict(optimizer_cfg.pop("kwargs", None) or {})
    options = dict(optimizer_cfg.pop("options", None) or {})
    check(not optimizer_cfg, f"unknown optimizer keys {sorted(optimizer_cfg)}; use name, batch_size, l2, kwargs, options")
    train_loss = lambda params: loss_fn(params, x, y)
    alias = optimizer(opt_name, loss=train_loss, options=options)
    tmap = from_optax(alias, loss_fn, x, y, batch_size=batch_size, **kwargs)

    def observe(params):
        return {"accuracy": accuracy(model.apply(params, x_test), y_test)}

    label = opt_name if batch_size is None else f"{opt_name}-b{batch_size}"
    return Task(
        dataset=ds,
        model=model,
        tmap=tmap,
        observe=observe,
        loss_fn=loss_fn,
        accuracy_target=DEFAULT_TARGETS.get(name, 0.9),
        hyper={"l2": l2} if l2 else {},
        name=f"{name}/{model_name}/{label}",
        train_loss=train_loss,
    )
