"""PyTorch's `torch.nn` loss classes for JAX: thin holders of options that call `jaxloss.functional`.

Each class takes the keyword arguments of its `torch.nn` namesake (minus the deprecated `size_average` and
`reduce`) and is called like it, ``loss(input, target, ...)``; the call is one line into the function of the
same semantics, so a class and its function can never disagree. Instances are immutable pytrees: array
options (`weight`, `pos_weight`) and real-number options (margins, ε, β, δ, which the functions take as data)
are leaves, everything else is static. So an instance can be closed over by a `jax.jit`-compiled function or
passed to one as an argument (where a new margin is a new value, not a new compilation), batched by
`jax.vmap` or differentiated by `jax.grad`.

Example:
  >>> import jax, jax.numpy as jnp
  >>> from jaxloss import nn
  >>> loss_fn = nn.CrossEntropyLoss()
  >>> logits, labels = jnp.array([[0.1, 0.2, 0.3]]), jnp.array([1])
  >>> jax.jit(lambda fn, x, y: fn(x, y))(loss_fn, logits, labels)
  Array(1.1019, dtype=float32)
"""

import dataclasses
import functools
import math
from numbers import Real
from typing import Any, TypeVar, dataclass_transform

import jax
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from jaxloss import _checks
from jaxloss import functional as F
from jaxloss._linear_cross_entropy import LinearCrossEntropyOptions as LinearCrossEntropyOptions
from jaxloss._linear_cross_entropy import torch_linear_init
from jaxloss._typing import DistanceFunction, KLDivReduction, Lengths, Reduction

__all__ = [
    "Loss",
    "L1Loss",
    "MSELoss",
    "SmoothL1Loss",
    "HuberLoss",
    "CrossEntropyLoss",
    "NLLLoss",
    "BCELoss",
    "BCEWithLogitsLoss",
    "KLDivLoss",
    "PoissonNLLLoss",
    "GaussianNLLLoss",
    "SoftMarginLoss",
    "MultiLabelSoftMarginLoss",
    "MultiLabelMarginLoss",
    "MultiMarginLoss",
    "MarginRankingLoss",
    "HingeEmbeddingLoss",
    "CosineEmbeddingLoss",
    "TripletMarginLoss",
    "TripletMarginWithDistanceLoss",
    "CTCLoss",
    "LinearCrossEntropyLoss",
    "LinearCrossEntropyOptions",
]

_LossT = TypeVar("_LossT", bound="Loss")


class Loss:
    """Base class of the jaxloss loss classes (`torch.nn.modules.loss._Loss`)."""


@dataclass_transform(eq_default=False, frozen_default=True)
def _loss_class(cls: type[_LossT]) -> type[_LossT]:
    """Makes `cls` a frozen dataclass and a pytree whose array fields (metadata ``array=True``) are leaves.

    Unflattening sets the fields without calling the constructor (as equinox does): JAX and its libraries
    rebuild instances with leaves that are not arrays (None from ``jax.tree.map(lambda x: None, ...)``, the
    placeholders of `vmap` and optax masks), which the constructor's initialisation and checks (e.g.
    `LinearCrossEntropyLoss`'s) are not meant for; the static fields were checked when the instance was made.

    Instances compare and hash by value: two losses of one class are equal when their static fields and their
    Python-float options are equal and their array fields are the same arrays (compared by identity: an array's
    value has no hash). So equal instances passed to `jax.jit` as static arguments share one compilation.
    """
    cls = dataclasses.dataclass(frozen=True, eq=False)(cls)
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]  # mypy cannot tell that `cls` is a dataclass now
    data = tuple(f.name for f in fields if f.metadata.get("leaf"))
    meta = tuple(f.name for f in fields if not f.metadata.get("leaf"))
    numbers = tuple(f.name for f in fields if f.metadata.get("number"))
    init = cls.__init__

    @functools.wraps(init)
    def __init__(loss: _LossT, *args: Any, **kwargs: Any) -> None:
        init(loss, *args, **kwargs)
        for name in numbers:  # Python and NumPy reals as Python floats: ints would refuse `jax.grad`
            value = getattr(loss, name)
            if isinstance(value, Real) and not isinstance(value, bool):
                object.__setattr__(loss, name, float(value))

    def flatten_with_keys(loss: _LossT) -> tuple[list[tuple[Any, Any]], tuple[Any, ...]]:
        return [(jax.tree_util.GetAttrKey(name), getattr(loss, name)) for name in data], _static(loss)

    def flatten(loss: _LossT) -> tuple[list[Any], tuple[Any, ...]]:
        return [getattr(loss, name) for name in data], _static(loss)

    def _static(loss: _LossT) -> tuple[Any, ...]:
        return tuple(getattr(loss, name) for name in meta)

    def unflatten(static: tuple[Any, ...], leaves: Any) -> _LossT:
        loss = object.__new__(cls)
        for name, value in zip((*meta, *data), (*static, *leaves), strict=True):
            object.__setattr__(loss, name, value)
        return loss

    def identity(loss: _LossT) -> tuple[Any, ...]:
        """What equality and hashing compare: the static fields' values, the values of the leaves that are
        Python floats (or None), and which arrays the other leaves are."""
        leaves = (getattr(loss, name) for name in data)
        return _static(loss), tuple(leaf if leaf is None or isinstance(leaf, float) else id(leaf) for leaf in leaves)

    def __eq__(loss: _LossT, other: object) -> bool:
        return type(other) is type(loss) and identity(loss) == identity(other)

    def __hash__(loss: _LossT) -> int:
        return hash((type(loss), identity(loss)))

    cls.__init__ = __init__  # type: ignore[method-assign,assignment]
    cls.__eq__ = __eq__  # type: ignore[method-assign,assignment]
    cls.__hash__ = __hash__  # type: ignore[method-assign,assignment]
    jax.tree_util.register_pytree_with_keys(cls, flatten_with_keys, unflatten, flatten)
    return cls


def _array() -> Any:
    """A dataclass field holding an optional array, None by default: a pytree leaf (to type checkers, any value)."""
    return dataclasses.field(default=None, metadata={"leaf": True})


def _number(default: float) -> Any:
    """A dataclass field holding a real-number option (a margin, ε, ...): a pytree leaf, as the functions take it
    as data. A Python or NumPy real is stored as a Python float; a JAX scalar as it is (traced, batched, or to be
    differentiated: ``jax.grad`` with respect to an instance gives the option's derivative)."""
    return dataclasses.field(default=default, metadata={"leaf": True, "number": True})


@_loss_class
class L1Loss(Loss):
    """`torch.nn.L1Loss`: mean absolute error. Called as ``loss(input, target)``; see `functional.l1_loss`."""

    reduction: Reduction = "mean"

    def __call__(self, input: ArrayLike, target: ArrayLike) -> jax.Array:
        return F.l1_loss(input, target, reduction=self.reduction)


@_loss_class
class MSELoss(Loss):
    """`torch.nn.MSELoss`: mean squared error. Called as ``loss(input, target)``; see `functional.mse_loss`."""

    reduction: Reduction = "mean"

    def __call__(self, input: ArrayLike, target: ArrayLike) -> jax.Array:
        return F.mse_loss(input, target, reduction=self.reduction)


@_loss_class
class SmoothL1Loss(Loss):
    """`torch.nn.SmoothL1Loss`. Called as ``loss(input, target)``; see `functional.smooth_l1_loss`."""

    reduction: Reduction = "mean"
    beta: float | jax.Array = _number(1.0)

    def __call__(self, input: ArrayLike, target: ArrayLike) -> jax.Array:
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


@_loss_class
class HuberLoss(Loss):
    """`torch.nn.HuberLoss`. Called as ``loss(input, target)``; see `functional.huber_loss`."""

    reduction: Reduction = "mean"
    delta: float | jax.Array = _number(1.0)

    def __call__(self, input: ArrayLike, target: ArrayLike) -> jax.Array:
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


@_loss_class
class CrossEntropyLoss(Loss):
    """`torch.nn.CrossEntropyLoss`: softmax cross-entropy over logits.

    Called as ``loss(input, target)`` with class indices or class probabilities; see
    `functional.cross_entropy`. `axis` (keyword-only, a jaxloss extra) selects the class axis.
    """

    weight: jax.Array | None = _array()
    ignore_index: int = -100
    reduction: Reduction = "mean"
    label_smoothing: float | jax.Array = _number(0.0)
    _: dataclasses.KW_ONLY
    axis: int | None = None

    def __call__(self, input: ArrayLike, target: ArrayLike) -> jax.Array:
        return F.cross_entropy(
            input,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
            axis=self.axis,
        )


@_loss_class
class NLLLoss(Loss):
    """`torch.nn.NLLLoss`: negative log-likelihood of log-probabilities.

    Called as ``loss(input, target)``; see `functional.nll_loss`. `axis` (keyword-only, a jaxloss extra)
    selects the class axis.
    """

    weight: jax.Array | None = _array()
    ignore_index: int = -100
    reduction: Reduction = "mean"
    _: dataclasses.KW_ONLY
    axis: int | None = None

    def __call__(self, input: ArrayLike, target: ArrayLike) -> jax.Array:
        return F.nll_loss(
            input,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            axis=self.axis,
        )


@_loss_class
class BCELoss(Loss):
    """`torch.nn.BCELoss`: binary cross-entropy of probabilities.

    Called as ``loss(input, target)``; see `functional.binary_cross_entropy`.
    """

    weight: jax.Array | None = _array()
    reduction: Reduction = "mean"

    def __call__(self, input: ArrayLike, target: ArrayLike) -> jax.Array:
        return F.binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)


@_loss_class
class BCEWithLogitsLoss(Loss):
    """`torch.nn.BCEWithLogitsLoss`: binary cross-entropy of logits, with optional `pos_weight`.

    Called as ``loss(input, target)``; see `functional.binary_cross_entropy_with_logits`.
    """

    weight: jax.Array | None = _array()
    reduction: Reduction = "mean"
    pos_weight: jax.Array | None = _array()

    def __call__(self, input: ArrayLike, target: ArrayLike) -> jax.Array:
        return F.binary_cross_entropy_with_logits(
            input, target, weight=self.weight, reduction=self.reduction, pos_weight=self.pos_weight
        )


@_loss_class
class KLDivLoss(Loss):
    """`torch.nn.KLDivLoss`. Called as ``loss(input, target)``; see `functional.kl_div`."""

    reduction: KLDivReduction = "mean"
    log_target: bool = False

    def __call__(self, input: ArrayLike, target: ArrayLike) -> jax.Array:
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)


@_loss_class
class PoissonNLLLoss(Loss):
    """`torch.nn.PoissonNLLLoss`. Called as ``loss(log_input, target)``; see `functional.poisson_nll_loss`."""

    log_input: bool = True
    full: bool = False
    eps: float | jax.Array = _number(1e-8)
    reduction: Reduction = "mean"

    def __call__(self, log_input: ArrayLike, target: ArrayLike) -> jax.Array:
        return F.poisson_nll_loss(
            log_input, target, log_input=self.log_input, full=self.full, eps=self.eps, reduction=self.reduction
        )


@_loss_class
class GaussianNLLLoss(Loss):
    """`torch.nn.GaussianNLLLoss` (keyword-only options, as in torch).

    Called as ``loss(input, target, var)``; see `functional.gaussian_nll_loss`.
    """

    _: dataclasses.KW_ONLY
    full: bool = False
    eps: float | jax.Array = _number(1e-6)
    reduction: Reduction = "mean"

    def __call__(self, input: ArrayLike, target: ArrayLike, var: ArrayLike) -> jax.Array:
        return F.gaussian_nll_loss(input, target, var, full=self.full, eps=self.eps, reduction=self.reduction)


@_loss_class
class SoftMarginLoss(Loss):
    """`torch.nn.SoftMarginLoss`. Called as ``loss(input, target)``; see `functional.soft_margin_loss`."""

    reduction: Reduction = "mean"

    def __call__(self, input: ArrayLike, target: ArrayLike) -> jax.Array:
        return F.soft_margin_loss(input, target, reduction=self.reduction)


@_loss_class
class MultiLabelSoftMarginLoss(Loss):
    """`torch.nn.MultiLabelSoftMarginLoss`.

    Called as ``loss(input, target)``; see `functional.multilabel_soft_margin_loss`.
    """

    weight: jax.Array | None = _array()
    reduction: Reduction = "mean"

    def __call__(self, input: ArrayLike, target: ArrayLike) -> jax.Array:
        return F.multilabel_soft_margin_loss(input, target, weight=self.weight, reduction=self.reduction)


@_loss_class
class MultiLabelMarginLoss(Loss):
    """`torch.nn.MultiLabelMarginLoss`.

    Called as ``loss(input, target)``; see `functional.multilabel_margin_loss`.
    """

    reduction: Reduction = "mean"

    def __call__(self, input: ArrayLike, target: ArrayLike) -> jax.Array:
        return F.multilabel_margin_loss(input, target, reduction=self.reduction)


@_loss_class
class MultiMarginLoss(Loss):
    """`torch.nn.MultiMarginLoss`. Called as ``loss(input, target)``; see `functional.multi_margin_loss`."""

    p: int = 1
    margin: float | jax.Array = _number(1.0)
    weight: jax.Array | None = _array()
    reduction: Reduction = "mean"

    def __call__(self, input: ArrayLike, target: ArrayLike) -> jax.Array:
        return F.multi_margin_loss(
            input, target, p=self.p, margin=self.margin, weight=self.weight, reduction=self.reduction
        )


@_loss_class
class MarginRankingLoss(Loss):
    """`torch.nn.MarginRankingLoss`.

    Called as ``loss(input1, input2, target)``; see `functional.margin_ranking_loss`.
    """

    margin: float | jax.Array = _number(0.0)
    reduction: Reduction = "mean"

    def __call__(self, input1: ArrayLike, input2: ArrayLike, target: ArrayLike) -> jax.Array:
        return F.margin_ranking_loss(input1, input2, target, margin=self.margin, reduction=self.reduction)


@_loss_class
class HingeEmbeddingLoss(Loss):
    """`torch.nn.HingeEmbeddingLoss`.

    Called as ``loss(input, target)``; see `functional.hinge_embedding_loss`.
    """

    margin: float | jax.Array = _number(1.0)
    reduction: Reduction = "mean"

    def __call__(self, input: ArrayLike, target: ArrayLike) -> jax.Array:
        return F.hinge_embedding_loss(input, target, margin=self.margin, reduction=self.reduction)


@_loss_class
class CosineEmbeddingLoss(Loss):
    """`torch.nn.CosineEmbeddingLoss`.

    Called as ``loss(input1, input2, target)``; see `functional.cosine_embedding_loss`.
    """

    margin: float | jax.Array = _number(0.0)
    reduction: Reduction = "mean"

    def __call__(self, input1: ArrayLike, input2: ArrayLike, target: ArrayLike) -> jax.Array:
        return F.cosine_embedding_loss(input1, input2, target, margin=self.margin, reduction=self.reduction)


@_loss_class
class TripletMarginLoss(Loss):
    """`torch.nn.TripletMarginLoss`.

    Called as ``loss(anchor, positive, negative)``; see `functional.triplet_margin_loss`.
    """

    margin: float | jax.Array = _number(1.0)
    p: float = 2.0
    eps: float | jax.Array = _number(1e-6)
    swap: bool = False
    reduction: Reduction = "mean"

    def __call__(self, anchor: ArrayLike, positive: ArrayLike, negative: ArrayLike) -> jax.Array:
        return F.triplet_margin_loss(
            anchor,
            positive,
            negative,
            margin=self.margin,
            p=self.p,
            eps=self.eps,
            swap=self.swap,
            reduction=self.reduction,
        )


@_loss_class
class TripletMarginWithDistanceLoss(Loss):
    """`torch.nn.TripletMarginWithDistanceLoss` (keyword-only options, as in torch).

    Called as ``loss(anchor, positive, negative)``; see `functional.triplet_margin_with_distance_loss`.
    """

    _: dataclasses.KW_ONLY
    distance_function: DistanceFunction | None = None
    margin: float | jax.Array = _number(1.0)
    swap: bool = False
    reduction: Reduction = "mean"

    def __call__(self, anchor: ArrayLike, positive: ArrayLike, negative: ArrayLike) -> jax.Array:
        return F.triplet_margin_with_distance_loss(
            anchor,
            positive,
            negative,
            distance_function=self.distance_function,
            margin=self.margin,
            swap=self.swap,
            reduction=self.reduction,
        )


@_loss_class
class CTCLoss(Loss):
    """`torch.nn.CTCLoss`: connectionist temporal classification.

    Called as ``loss(log_probs, targets, input_lengths, target_lengths)``; see `functional.ctc_loss`.
    """

    blank: int = 0
    reduction: Reduction = "mean"
    zero_infinity: bool = False

    def __call__(
        self, log_probs: ArrayLike, targets: ArrayLike, input_lengths: Lengths, target_lengths: Lengths
    ) -> jax.Array:
        return F.ctc_loss(
            log_probs,
            targets,
            input_lengths,
            target_lengths,
            blank=self.blank,
            reduction=self.reduction,
            zero_infinity=self.zero_infinity,
        )


@_loss_class
class LinearCrossEntropyLoss(Loss):
    """`torch.nn.LinearCrossEntropyLoss`: a linear layer that it owns, then the cross-entropy of its logits.

    Called as ``loss(input, target)``; see `functional.linear_cross_entropy`. torch's constructor, minus
    `device` (JAX places arrays with `jax.device_put`), plus keyword-only extras:

    * `key`: the PRNG key that initialises the parameters not given, as torch's `nn.Linear` does:
      U(−1/√in_features, 1/√in_features). Needed unless `linear_weight` (and, with ``bias=True``,
      `linear_bias`) are given.
    * `linear_weight`, `linear_bias`: the parameters themselves, pytree leaves (``jax.grad`` with respect
      to the instance gives their gradients), in the layout of torch's ``linear.weight``
      ``(C · prod(out_features), in_features)`` and ``linear.bias`` ``(C · prod(out_features),)``: a torch
      state dict loads as it is, e.g. ``dataclasses.replace(loss, linear_weight=jnp.asarray(
      module.linear.weight.detach().numpy()))``. The call reshapes them to ``(C, *out_features,
      in_features)`` and ``(C, *out_features)``.

    `bias` and `dtype` only matter for initialisation (the parameters' presence and dtype say the rest).
    As in torch, ``label_smoothing`` outside [0, 1] raises `ValueError` here (the function takes ε <= 0 as
    no smoothing); the array fields are checked when the loss is called, since JAX transformations rebuild
    instances with stacked or placeholder leaves.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxloss import nn
      >>> loss = nn.LinearCrossEntropyLoss(4, 3, bias=True, key=jax.random.key(0))
      >>> loss.linear_weight.shape, loss.linear_bias.shape
      ((3, 4), (3,))
      >>> grads = jax.grad(lambda l: l(jnp.ones((2, 4)), jnp.array([0, 2])))(loss)
      >>> grads.linear_weight.shape
      (3, 4)
    """

    in_features: int
    num_classes: int
    _: dataclasses.KW_ONLY
    out_features: tuple[int, ...] = ()
    bias: dataclasses.InitVar[bool] = False
    dtype: dataclasses.InitVar[DTypeLike | None] = None
    reduction: Reduction = "mean"
    weight: jax.Array | None = _array()
    ignore_index: int | None = None
    label_smoothing: float | jax.Array = _number(0.0)
    options: LinearCrossEntropyOptions | None = None
    key: dataclasses.InitVar[jax.Array | None] = None
    linear_weight: jax.Array | None = _array()
    linear_bias: jax.Array | None = _array()

    def __post_init__(self, bias: bool, dtype: DTypeLike | None, key: jax.Array | None) -> None:
        name = type(self).__name__
        object.__setattr__(self, "out_features", tuple(self.out_features))  # hashable: a static field
        smoothing = _checks.concrete_value(self.label_smoothing)  # None when traced; an array when batched
        if smoothing is not None and (np.any(smoothing < 0) or np.any(smoothing > 1)):  # torch's test (NaN passes)
            raise ValueError(f"{name}: `label_smoothing` must lie in [0, 1]; got {self.label_smoothing!r}.")
        if self.linear_weight is None or (bias and self.linear_bias is None):
            if key is None:
                raise ValueError(
                    f"{name}: pass `key` (a PRNG key) to initialise the linear layer as torch does, or its "
                    "parameters `linear_weight` (and `linear_bias` with bias=True)."
                )
            out_size = self.num_classes * math.prod(self.out_features)
            linear_weight, linear_bias = torch_linear_init(key, self.in_features, out_size, bias=bias, dtype=dtype)
            if self.linear_weight is None:
                object.__setattr__(self, "linear_weight", linear_weight)
            if self.linear_bias is None:
                object.__setattr__(self, "linear_bias", linear_bias)

    def __call__(self, input: ArrayLike, target: ArrayLike) -> jax.Array:
        if self.linear_weight is None:  # set by the constructor; only a pytree rebuilt without it lacks it
            raise ValueError(f"{type(self).__name__}: `linear_weight` is None; the loss has no linear layer.")
        classes = (self.num_classes, *self.out_features)
        return F.linear_cross_entropy(
            input,
            self.linear_weight.reshape(*classes, self.in_features),
            target,
            linear_bias=None if self.linear_bias is None else self.linear_bias.reshape(classes),
            weight=self.weight,
            reduction=self.reduction,
            ignore_index=self.ignore_index,
            label_smoothing=self.label_smoothing,
            options=self.options,
        )
