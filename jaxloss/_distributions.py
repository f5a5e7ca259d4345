"""Distribution losses: kl_div, poisson_nll_loss, gaussian_nll_loss."""

import math
import warnings
from typing import get_args

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero
from jax.scipy.special import xlogy
from jax.typing import ArrayLike

from jaxloss import _checks, _subgradients
from jaxloss._jit import FloatOption, typed_jit
from jaxloss._reduction import reduce
from jaxloss._typing import KLDivReduction, Reduction

_KL_REDUCTIONS = get_args(KLDivReduction)


@typed_jit(static_argnames=("reduction", "log_target"))
def _kl_div(input: ArrayLike, target: ArrayLike, reduction: KLDivReduction, log_target: bool) -> jax.Array:
    """`kl_div` without its warning (which must fire on every call, not only when this is traced)."""
    _checks.check_reduction("kl_div", reduction, _KL_REDUCTIONS)
    dtype = _checks.floating_dtype("kl_div", input=input, target=target)
    input, target = _checks.cast_for_computation(dtype, input, target)
    _checks.broadcast_shape("kl_div", input=input.shape, target=target.shape)
    if log_target:
        loss = jnp.exp(target) * (target - input)
    else:
        # torch's own formula: xlogy makes a zero target contribute exactly 0 (and a negative one NaN), and
        # autodiff through it gives torch's target gradient log(t) + 1 - x, NaN at t = 0 (0/0 in both).
        loss = xlogy(target, target) - target * input
    if reduction == "batchmean":
        # torch divides by input.shape[0] (not the broadcast shape's), and not at all for 0-dim input.
        total = jnp.sum(loss)
        return (total if input.ndim == 0 else total / input.shape[0]).astype(dtype)
    return reduce(loss, reduction).astype(dtype)


def kl_div(
    input: ArrayLike, target: ArrayLike, reduction: KLDivReduction = "mean", log_target: bool = False
) -> jax.Array:
    r"""Kullback-Leibler divergence loss, as `torch.nn.functional.kl_div`.

    `input` holds log-probabilities ``x``; `target` holds probabilities ``t`` (log-probabilities when
    `log_target`):

    .. math::
      \ell_i = \begin{cases} t_i (\log t_i - x_i) & \text{log\_target = False} \\
                             e^{t_i} (t_i - x_i) & \text{log\_target = True} \end{cases}

    computed as torch does, ``xlogy(t, t) - t x``: a zero target contributes exactly 0, a negative target
    gives NaN (no error, as in torch). Both arguments are differentiated; the target gradient is
    ``log t + 1 - x``, NaN at ``t = 0`` (as torch's).

    Only ``'batchmean'`` is the mathematical KL divergence (summed over all but the first axis, averaged over
    the first). ``'mean'`` divides by the number of elements and warns (`UserWarning`), as torch does.

    `optax.kl_divergence(log_predictions, targets)` takes its arguments in the same order and convention
    (log-predictions first, plain probabilities second), but sums over an `axis` (the last by default) and
    does not reduce further: it equals ``kl_div(x, t, reduction='none').sum(-1)``. Log-space targets are a
    separate function there, `optax.kl_divergence_with_log_targets`.

    Args:
      input: log-probabilities ``x``, any shape, floating.
      target: ``t``, broadcastable to `input` (silently, as in torch), floating.
      reduction: ``'none'`` | ``'batchmean'`` | ``'sum'`` | ``'mean'``. ``'batchmean'`` is the sum divided
        by ``input.shape[0]`` (the plain sum for 0-dim input).
      log_target: whether `target` holds log-probabilities.

    Returns:
      The element losses (broadcast shape) for ``'none'``, else a scalar; in the promoted dtype of the operands.

    Raises:
      TypeError: an integer (or boolean) operand; torch rejects them too.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss.functional import kl_div
      >>> log_p = jnp.log(jnp.array([[0.25, 0.75], [0.5, 0.5]]))
      >>> kl_div(log_p, jnp.array([[0.5, 0.5], [0., 1.]]), reduction='batchmean')
      Array(0.4184941, dtype=float32)
    """
    if reduction == "mean":
        warnings.warn(
            "kl_div: reduction='mean' divides the total loss by both the batch size and the support size; "
            "'batchmean' divides only by the batch size, and aligns with the KL divergence's definition. "
            "(torch: 'mean' will be changed to behave the same as 'batchmean' in the next major release.)",
            UserWarning,
            stacklevel=2,
        )
    return _kl_div(input, target, reduction, log_target)


@typed_jit(static_argnames=("log_input", "full", "reduction"), float_options=(FloatOption("eps"),))
def poisson_nll_loss(
    input: ArrayLike,
    target: ArrayLike,
    log_input: bool = True,
    full: bool = False,
    eps: float | jax.Array = 1e-8,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Poisson negative log-likelihood, as `torch.nn.functional.poisson_nll_loss`.

    .. math::
      \ell_i = \begin{cases} e^{x_i} - t_i x_i & \text{log\_input = True} \\
                             x_i - t_i \log(x_i + \varepsilon) & \text{log\_input = False} \end{cases}
               \; + \; [\text{full} \wedge t_i > 1] \left(t_i \log t_i - t_i + \tfrac12 \log(2 \pi t_i)\right)

    The Stirling term (``full=True``) is added only where ``t > 1``. The target is differentiated, and its
    gradient with ``full=True`` is NaN where ``t <= 0`` (as torch's: the masked-out Stirling term still
    multiplies a zero by ``log t``). Targets are not validated (negative ones are accepted, as in torch).

    .. warning:: Without torch's deprecated `size_average` and `reduce`, `eps` and `reduction` sit one and two
       places earlier than in torch's positional order: pass them by keyword.

    Args:
      input: the Poisson rate's log (``log_input=True``) or the rate itself, any shape; floating, integer or
        boolean.
      target: counts ``t``, broadcastable to `input` (silently, as in torch); floating, integer, or boolean
        without `full`.
      log_input: whether `input` is the log of the rate.
      full: whether to add the Stirling approximation of ``log(t!)``.
      eps: added to the rate before its log when ``log_input=False`` (unused otherwise): any real number, a
        Python number or a real JAX scalar (which may be traced, batched with `jax.vmap`, or differentiated).
      reduction: ``'none'`` | ``'mean'`` | ``'sum'``.

    Returns:
      The element losses (broadcast shape) for ``'none'``, else a scalar; in the promoted dtype of the operands,
      where an integer (or boolean) `input` counts as float32 and an integer `target` does not count (as in
      torch: float32 for two integers, float32 for an integer input with a float16 target).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss.functional import poisson_nll_loss
      >>> poisson_nll_loss(jnp.array([0., 1.]), jnp.array([1., 3.]), full=True, reduction='sum')
      Array(2.4823632, dtype=float32)
    """
    _checks.check_reduction("poisson_nll_loss", reduction)
    # torch's Stirling term (full=True) subtracts the target, which torch refuses for a boolean one.
    booleans = ("input",) if full else ("input", "target")
    dtype = _checks.floating_dtype(
        "poisson_nll_loss", integers_to_float32=True, booleans=booleans, input=input, target=target
    )
    # torch takes exp/log of an integer operand in float32 (its default dtype) and promotes from there: an
    # integer input makes the result at least float32 (even with a float16 target), and the transcendental
    # terms of integer operands keep float32 precision in a float64 loss.
    is_integer = [not jnp.issubdtype(jnp.result_type(a), jnp.floating) for a in (input, target)]  # or boolean
    if is_integer[0]:
        dtype = jnp.promote_types(dtype, jnp.float32)
    input, target = (
        jnp.asarray(a).astype(jnp.float32 if integer else _checks.computation_dtype(dtype))
        for a, integer in zip((input, target), is_integer, strict=True)
    )
    _checks.broadcast_shape("poisson_nll_loss", input=input.shape, target=target.shape)
    if log_input:
        loss = jnp.exp(input) - target * input
    else:
        # eps in the rate's dtype, as torch's Python-number eps (a JAX scalar of another dtype promotes nothing).
        loss = input - target * jnp.log(input + jnp.asarray(eps, input.dtype))
    if full:
        stirling = target * jnp.log(target) - target + 0.5 * jnp.log(2 * math.pi * target)
        # torch's masked_fill: the same NaN-through-a-zero-cotangent target gradient where t <= 0.
        loss = loss + jnp.where(target <= 1, 0.0, stirling)
    return reduce(loss, reduction).astype(dtype)


@jax.custom_jvp
def _straight_through_clamp_min(x: jax.Array, minimum: jax.Array) -> jax.Array:
    """``max(x, minimum)`` (NaN propagates) whose derivative in `x` is the identity's everywhere: torch clamps
    `var` in place under `no_grad`, so its gradient reaches `var` as if unclamped. Unlike
    ``x + stop_gradient(max(x, minimum) - x)``, the value is exactly `minimum` where clamped. The derivative in
    the scalar `minimum` is 1 where clamped (``x < minimum``) and 0 elsewhere, NaN included."""
    return jnp.where(x < minimum, minimum, x)


def _straight_through_clamp_min_jvp(
    primals: tuple[jax.Array, jax.Array], tangents: tuple[jax.Array | SymbolicZero, jax.Array | SymbolicZero]
) -> tuple[jax.Array, jax.Array]:
    (x, minimum), (dx, dminimum) = primals, tangents
    clamped = (x < minimum).astype(x.dtype)
    return _straight_through_clamp_min(x, minimum), _subgradients.tangent_sum(
        (jnp.ones_like(x), dx), (clamped, dminimum)
    )


_straight_through_clamp_min.defjvp(_straight_through_clamp_min_jvp, symbolic_zeros=True)


def _broadcastable_var(input_shape: tuple[int, ...], var: jax.Array) -> jax.Array:
    """`var` in a shape that broadcasts against the input's, by torch's rules, or `ValueError`."""
    if var.shape == input_shape:
        return var
    if var.shape == input_shape[:-1]:  # one variance per row of the last axis
        return jnp.expand_dims(var, -1)
    # torch's test, literally: same ndim, and the sizes of var's mismatched dims sum to 1.
    if var.ndim == len(input_shape) and sum(v for i, v in zip(input_shape, var.shape, strict=True) if i != v) == 1:
        return var
    raise ValueError(
        f"gaussian_nll_loss: `var` is of incorrect size: expected the input's shape {input_shape}, that shape "
        f"without its last axis {input_shape[:-1]}, or the input's shape with one axis of size 1; "
        f"got {var.shape}."
    )


@typed_jit(static_argnames=("full", "reduction"), float_options=(FloatOption("eps"),))
def _gaussian_nll_loss(
    input: ArrayLike, target: ArrayLike, var: ArrayLike, full: bool, eps: float | jax.Array, reduction: Reduction
) -> tuple[jax.Array, _checks.Failures]:
    """`gaussian_nll_loss` for an array `var`: the loss, NaN where `var` is negative, and that failure."""
    _checks.check_reduction("gaussian_nll_loss", reduction)
    _checks.floating_dtype("gaussian_nll_loss", var=var)  # torch clamps `var` in place: an integer one fails
    dtype = _checks.floating_dtype("gaussian_nll_loss", integers_to_float32=True, input=input, target=target, var=var)
    input, target, var = _checks.cast_for_computation(dtype, input, target, var)
    var = _broadcastable_var(input.shape, var)
    _checks.broadcast_shape("gaussian_nll_loss", input=input.shape, target=target.shape, var=var.shape)
    negative = var < 0
    failures = {"`var` must be non-negative; it has negative entries": jnp.any(negative)}
    failed = _checks.any_failed(failures)
    input = _checks.nan_derivatives_if(failed, input)
    target = _checks.nan_derivatives_if(failed, target)
    var = _checks.nan_derivatives_if(failed, var)
    # eps in var's dtype, as torch's Python-number eps (a JAX scalar of another dtype promotes nothing).
    eps = _checks.nan_derivatives_if(failed, jnp.asarray(eps, var.dtype))
    clamped = _straight_through_clamp_min(var, eps)
    loss = 0.5 * (jnp.log(clamped) + jnp.square(input - target) / clamped)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return reduce(_checks.nan_where(negative, loss), reduction).astype(dtype), failures


def gaussian_nll_loss(
    input: ArrayLike,
    target: ArrayLike,
    var: ArrayLike,
    full: bool = False,
    eps: float | jax.Array = 1e-6,
    reduction: Reduction = "mean",
) -> jax.Array:
    r"""Gaussian negative log-likelihood, as `torch.nn.functional.gaussian_nll_loss`.

    .. math::
      \ell_i = \tfrac12 \left(\log v_i + \frac{(x_i - t_i)^2}{v_i}\right) + [\text{full}] \tfrac12 \log 2\pi,
      \qquad v_i = \max(\text{var}_i, \varepsilon)

    Gradients: `input`, `target` and `var` are all differentiated. The clamp at `eps` is straight-through,
    as in torch (which clamps in place outside autograd): where ``var < eps`` the value uses ``eps`` and the
    gradient w.r.t. `var` is the derivative of the loss at ``eps``, not 0. The gradient w.r.t. `eps` is that
    same derivative where ``var < eps``, and 0 elsewhere.

    Shapes of `var`, given `input`'s shape ``S`` (torch's rules): ``S``; ``S[:-1]`` (one variance per row,
    broadcast over the last axis); or ``S`` with mismatched axes whose sizes in `var` sum to 1 (in practice:
    one axis of size 1, e.g. ``(N, 1)`` for ``(N, C)``). Anything else raises `ValueError`, even shapes that
    would broadcast (``(C,)``, ``(1, 1)``, a 0-dim array with input of 2 or more dims). A Python float `var`
    is one variance for every element (under an outer `jax.jit`, close over it or make it static: a traced
    float is a 0-dim array, and follows the rules for arrays). A Python int `var` raises `TypeError`, as in
    torch (pass ``1.0``).

    Value check: a negative entry of `var` raises `ValueError` when called eagerly (as torch does); under
    `jax.jit`/`jax.vmap` the affected element losses (and so any reduction over them) are NaN instead, and so
    is every element of the gradients. A negative Python float `var` raises in every mode. Zero is allowed and
    clamped to `eps`.

    Args:
      input: means ``x``, shape ``S``; floating or integer.
      target: samples ``t``, broadcastable to `input` (silently, as in torch); floating or integer.
      var: variances, non-negative: a floating array of one of the shapes above, or a Python float.
      full: whether to add the constant ``0.5 log(2π)``.
      eps: the floor of the variance: any real number (unchecked, as in torch), a Python number or a real JAX
        scalar (which may be traced, batched with `jax.vmap`, or differentiated).
      reduction: ``'none'`` | ``'mean'`` | ``'sum'``.

    Returns:
      The element losses (broadcast shape of `input` and `target`) for ``'none'``, else a scalar; in the
      promoted dtype of the operands.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxloss.functional import gaussian_nll_loss
      >>> x, t = jnp.array([[0., 1.], [2., 3.]]), jnp.array([[0., 0.], [1., 1.]])
      >>> gaussian_nll_loss(x, t, jnp.array([1., 2.]))  # one variance per row
      Array(0.6107868, dtype=float32)
    """
    if isinstance(var, float):
        # torch tests a float var here (NaN passes) and expands it to the input's shape and dtype (`var *
        # ones_like(input)`: float32, torch's default, for an integer input).
        _checks.check_option("gaussian_nll_loss", "var", var, not var < 0, "non-negative")
        var = jnp.full(
            jnp.shape(input), var, _checks.floating_dtype("gaussian_nll_loss", integers_to_float32=True, input=input)
        )
    loss, failures = _gaussian_nll_loss(input, target, var, full, eps, reduction)
    return _checks.raise_failed("gaussian_nll_loss", loss, failures)
