"""Run a JAX function and a torch function on the same arguments; compare their values and gradients."""

import textwrap
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss.testing._comparison import Comparison, compare_arrays
from jaxloss.testing._convert import to_numpy, to_torch
from jaxloss.testing._tolerances import (
    DEFAULT_TOLERANCES,
    MODES,
    DTypeName,
    Mode,
    Tolerance,
    check_dtype_name,
    check_mode,
    is_16_bit,
    numpy_dtype,
)
from jaxloss.testing._torch import is_tensor, require_torch

KeyPath = tuple[Any, ...]
# Arguments by name (called as keywords) or by position (int keys 0, 1, ..., called positionally).
Arguments = dict[Any, Any]


class ParityError(AssertionError):
    """A JAX function differs from torch's: the message is the report, `comparisons` every comparison made."""

    def __init__(self, message: str, comparisons: Sequence[Comparison]) -> None:
        super().__init__(message)
        self.comparisons = tuple(comparisons)


def _is_floating(array: np.ndarray) -> bool:
    return bool(jnp.issubdtype(array.dtype, jnp.floating))


def _flat(tree: Any) -> list[tuple[KeyPath, Any]]:
    return jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_tensor)[0]


def _arguments(args: Arguments, dtype: DTypeName) -> tuple[Arguments, Arguments]:
    """The arguments for torch and for JAX (see `compare_parity`), as NumPy arrays."""
    wanted = numpy_dtype(dtype)
    judge = np.dtype(np.float32) if is_16_bit(dtype) else wanted
    integer = jax.dtypes.canonicalize_dtype(np.int64)  # int32 unless x64 is enabled

    def for_torch(leaf: np.ndarray) -> np.ndarray:
        if _is_floating(leaf):
            return leaf.astype(wanted).astype(judge)  # 16-bit values, exactly, in float32
        return leaf.astype(np.int64) if jnp.issubdtype(leaf.dtype, jnp.integer) else leaf

    def for_jax(leaf: np.ndarray) -> np.ndarray:
        if _is_floating(leaf):
            return leaf.astype(wanted)
        return leaf.astype(integer) if jnp.issubdtype(leaf.dtype, jnp.integer) else leaf

    arrays = to_numpy(args)
    return jax.tree.map(for_torch, arrays), jax.tree.map(for_jax, arrays)


def _torch_side(
    torch_fn: Callable[..., Any], arrays: Arguments, grad: Sequence[str | int], seed: int
) -> tuple[list[tuple[KeyPath, np.ndarray]], list[np.ndarray], dict[KeyPath, np.ndarray]]:
    """torch's outputs, the cotangent of each (zeros for integer outputs), and the gradients of
    ``sum(output * cotangent)`` with respect to the floating leaves of the `grad` arguments (zeros where torch
    has no graph edge), keyed by their paths in the arguments."""
    torch = require_torch()
    tensors = {name: to_torch(value, requires_grad=name in grad) for name, value in arrays.items()}
    outputs = _flat(_call(torch_fn, tensors))
    for path, output in outputs:
        if not isinstance(output, torch.Tensor):
            raise TypeError(
                f"compare_parity: `torch_fn` returned {type(output).__name__} at value{jax.tree_util.keystr(path)}"
                ", expected torch tensors"
            )
    rng = np.random.default_rng(seed)
    values = [(path, to_numpy(output)) for path, output in outputs]
    cotangents = [
        rng.uniform(0.5, 1.5, value.shape).astype(value.dtype) if _is_floating(value) else np.zeros(value.shape)
        for _, value in values
    ]
    inputs = [(path, leaf) for path, leaf in _flat(tensors) if leaf.requires_grad]
    differentiable = [
        (output, torch.from_numpy(cotangent))
        for (_, output), cotangent in zip(outputs, cotangents, strict=True)
        if output.requires_grad
    ]
    found: Sequence[Any] = [None] * len(inputs)
    if inputs and differentiable:
        found = torch.autograd.grad(
            [output for output, _ in differentiable],
            [leaf for _, leaf in inputs],
            grad_outputs=[cotangent for _, cotangent in differentiable],
            allow_unused=True,
        )
    grads = {
        path: np.zeros(leaf.shape, to_numpy(leaf).dtype) if g is None else to_numpy(g)
        for (path, leaf), g in zip(inputs, found, strict=True)
    }
    return values, cotangents, grads


def _jax_side(
    jax_fn: Callable[..., Any],
    arrays: Arguments,
    grad: Sequence[str | int],
    cotangents: list[np.ndarray],
    mode: Mode,
) -> tuple[list[tuple[KeyPath, np.ndarray]], dict[KeyPath, np.ndarray]]:
    """JAX's outputs and the VJP of `cotangents` with respect to the floating leaves of the `grad` arguments
    (keyed by their paths in the arguments), eagerly or with the whole computation inside `jax.jit`.

    An output whose shape differs from its cotangent's, or that torch does not have, gets a zero cotangent: the
    comparison of the outputs reports it.
    """
    leaves, structure = jax.tree_util.tree_flatten_with_path(arrays)
    differentiated = [i for i, (path, leaf) in enumerate(leaves) if path[0].key in grad and _is_floating(leaf)]
    output_paths: list[KeyPath] = []  # filled while the function runs (or is traced)

    def outputs_of(diff: list[jax.Array], rest: list[jax.Array]) -> list[jax.Array]:
        given = dict(zip(differentiated, diff, strict=True))
        others = iter(rest)
        inputs = [given[i] if i in given else next(others) for i in range(len(leaves))]
        flat = jax.tree_util.tree_flatten_with_path(_call(jax_fn, jax.tree.unflatten(structure, inputs)))[0]
        output_paths[:] = [path for path, _ in flat]
        return [output if isinstance(output, jax.Array) else jnp.asarray(output) for _, output in flat]

    def value_and_grads(
        diff: list[jax.Array], rest: list[jax.Array], cotangents: list[jax.Array]
    ) -> tuple[list[jax.Array], list[jax.Array]]:
        def floating_outputs(diff: list[jax.Array]) -> tuple[list[jax.Array], list[jax.Array]]:
            outputs = outputs_of(diff, rest)
            return [o for o in outputs if jnp.issubdtype(o.dtype, jnp.inexact)], outputs

        _, vjp, outputs = jax.vjp(floating_outputs, diff, has_aux=True)
        matched = [
            cotangents[i].astype(o.dtype)
            if i < len(cotangents) and cotangents[i].shape == o.shape
            else jnp.zeros_like(o)
            for i, o in enumerate(outputs)
            if jnp.issubdtype(o.dtype, jnp.inexact)
        ]
        return outputs, vjp(matched)[0]

    diff = [jnp.asarray(leaves[i][1]) for i in differentiated]
    rest = [jnp.asarray(leaf) for i, (_, leaf) in enumerate(leaves) if i not in differentiated]
    run = value_and_grads if mode == "eager" else jax.jit(value_and_grads)
    outputs, grads = run(diff, rest, [jnp.asarray(c) for c in cotangents])
    return (
        [(path, np.asarray(o)) for path, o in zip(output_paths, outputs, strict=True)],
        {leaves[i][0]: np.asarray(g) for i, g in zip(differentiated, grads, strict=True)},
    )


def _tolerance_of(tolerance: Tolerance | Mapping[DTypeName, Tolerance] | None, dtype: DTypeName) -> Tolerance:
    if tolerance is None:
        return DEFAULT_TOLERANCES[dtype]
    if isinstance(tolerance, Tolerance):
        return tolerance
    if isinstance(tolerance, Mapping):
        return tolerance.get(dtype, DEFAULT_TOLERANCES[dtype])
    raise TypeError(f"`tolerance` must be a Tolerance, a mapping of dtype names to them, or None, got {tolerance!r}")


def _expected_dtype(torch_dtype: np.dtype, dtype: DTypeName) -> np.dtype:
    """The dtype JAX should return where torch returns `torch_dtype`: the 16-bit dtype of a 16-bit check where
    torch (judging in float32) has float32, otherwise torch's as JAX holds it (int64 is int32 without x64)."""
    if is_16_bit(dtype) and torch_dtype == np.float32:
        return numpy_dtype(dtype)
    return np.dtype(jax.dtypes.canonicalize_dtype(torch_dtype))


def _label(prefix: str, path: KeyPath) -> str:
    return prefix + jax.tree_util.keystr(path)


def _gradient_label(path: KeyPath) -> str:
    """``d/dinput`` for the argument ``input``, ``d/dargs[0]`` for the first positional one, then the leaf's path."""
    argument = path[0].key
    return _label(f"d/d{argument}" if isinstance(argument, str) else f"d/dargs[{argument}]", path[1:])


def _call(fn: Callable[..., Any], arguments: Arguments) -> Any:
    if all(isinstance(key, int) for key in arguments):
        return fn(*arguments.values())
    return fn(**arguments)


def compare_parity(
    jax_fn: Callable[..., Any],
    torch_fn: Callable[..., Any],
    args: Mapping[str, Any] | Sequence[Any],
    *,
    grad: Sequence[str | int] = (),
    dtype: DTypeName = "float32",
    mode: Mode = "eager",
    tolerance: Tolerance | Mapping[DTypeName, Tolerance] | None = None,
    cotangent_seed: int = 0,
) -> list[Comparison]:
    """Compares a JAX function with a torch function on the same arguments: outputs and VJP gradients.

    Both functions are called with the arguments `args`: `torch_fn` with torch tensors, `jax_fn` with JAX
    arrays (traced under ``mode='jit'``). Floating arrays are cast to `dtype`; integer arrays go to torch as int64
    and to JAX as its default integer (int32, or int64 with x64 enabled); booleans stay booleans. A float64 check
    runs inside ``jax.enable_x64()``.

    The gradients are those of ``sum(output * cotangent)`` over the floating outputs, with one random cotangent
    in ``[0.5, 1.5)`` per output element, the same for both: torch's ``autograd.grad`` against JAX's ``vjp``, with
    respect to every floating leaf of the arguments named in `grad` (torch's gradient is zero where its graph has
    no edge to a leaf).

    A 16-bit check (``'float16'``, ``'bfloat16'``) gives `jax_fn` 16-bit arguments and `torch_fn` the same values
    in float32: JAX's 16-bit results are held to torch's float32 answer, within the 16-bit tolerance.

    Args:
      jax_fn: the JAX function; it returns an array or a pytree of arrays.
      torch_fn: the torch function it should equal; it returns a tensor or the same structure of tensors.
      args: the arguments for both, a mapping of keyword arguments or a sequence of positional ones; each is
        an array-like (NumPy, JAX, a torch tensor, a Python number) or a
        pytree of them, e.g. a `state_dict` of torch-layout weights that `jax_fn` converts itself.
      grad: the arguments to differentiate with respect to: names of keyword arguments, positions of positional
        ones.
      dtype: the floating dtype of the check (`DTypeName`).
      mode: ``'eager'``, or ``'jit'`` to run JAX's outputs and gradients in one `jax.jit`.
      tolerance: a `Tolerance`, a mapping from dtype names to them, or ``None`` for `DEFAULT_TOLERANCES`.
      cotangent_seed: the seed of the cotangents.

    Returns:
      One `Comparison` per output, then one per gradient leaf; every one of them, passed or not.

    Raises:
      ValueError: if `grad` names an argument that `args` lacks, or `dtype` or `mode` is unknown.
      TypeError: if `torch_fn` returns something other than tensors.

    Example:
      >>> import torch
      >>> import jax.numpy as jnp
      >>> x = np.array([0.0, 1.0, -2.0])
      >>> results = compare_parity(jnp.tanh, torch.tanh, [x], grad=[0])
      >>> [(c.what, c.passed) for c in results]
      [('value', True), ('d/dargs[0]', True)]
    """
    dtype, mode = check_dtype_name(dtype), check_mode(mode)
    arguments: Arguments = dict(args) if isinstance(args, Mapping) else dict(enumerate(args))
    unknown = [name for name in grad if name not in arguments]
    if unknown:
        raise ValueError(f"`grad` names {unknown}, which are not in `args` ({list(arguments)})")
    tol = _tolerance_of(tolerance, dtype)
    with jax.enable_x64(dtype == "float64"):
        torch_arrays, jax_arrays = _arguments(arguments, dtype)
        expected, cotangents, expected_grads = _torch_side(torch_fn, torch_arrays, grad, cotangent_seed)
        actual, grads = _jax_side(jax_fn, jax_arrays, grad, cotangents, mode)

        def compare(what: str, a: np.ndarray, e: np.ndarray) -> Comparison:
            return compare_arrays(
                a, e, what=what, dtype=dtype, mode=mode, tolerance=tol, expected_dtype=_expected_dtype(e.dtype, dtype)
            )

        expected_paths, actual_paths = [p for p, _ in expected], [p for p, _ in actual]
        if expected_paths != actual_paths:
            labels = [", ".join(_label("value", p) for p in paths) for paths in (actual_paths, expected_paths)]
            problem = f"jax returns {labels[0] or 'nothing'}, torch {labels[1] or 'nothing'}"
            return [Comparison(what="value", dtype=dtype, mode=mode, tolerance=tol, passed=False, problem=problem)]
        comparisons = [compare(_label("value", p), a, e) for (p, a), (_, e) in zip(actual, expected, strict=True)]
        if any(c.problem for c in comparisons):
            return comparisons  # a cotangent did not fit: the gradients are not comparable
        comparisons += [compare(_gradient_label(path), grads[path], expected_grads[path]) for path in grads]
    return comparisons


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def assert_parity(
    jax_fn: Callable[..., Any],
    torch_fn: Callable[..., Any],
    args: Mapping[str, Any] | Sequence[Any],
    *,
    grad: Sequence[str | int] = (),
    dtypes: Sequence[DTypeName] = ("float32", "float64"),
    modes: Sequence[Mode] = MODES,
    tolerance: Tolerance | Mapping[DTypeName, Tolerance] | None = None,
    cotangent_seed: int = 0,
) -> list[Comparison]:
    """Asserts that a JAX function computes torch's values and gradients, in every dtype and mode asked for.

    Runs `compare_parity` for each dtype and mode; see it for how the arguments are given to each side.

    Args:
      jax_fn: the JAX function.
      torch_fn: the torch function it should equal.
      args: the arguments for both, keyword (a mapping) or positional (a sequence).
      grad: the arguments to differentiate with respect to, by name or position.
      dtypes: the dtypes to check in (`DTypeName`).
      modes: ``'eager'``, ``'jit'`` or both.
      tolerance: a `Tolerance`, a mapping from dtype names to them, or ``None`` for `DEFAULT_TOLERANCES`.
      cotangent_seed: the seed of the cotangents.

    Returns:
      Every `Comparison` made, when all passed.

    Raises:
      ParityError: an `AssertionError` whose message reports each failed comparison (which output or gradient,
        the dtype and mode, how many elements differ and by how much, where, and where NaN or an infinity is on
        one side only), then lists those that passed.

    Example:
      >>> import torch
      >>> import jaxloss.functional as F
      >>> x, y = np.array([0.0, 1.0, -2.0]), np.array([0.0, 0.5, -2.0])  # ties at 0 and -2: |x - y| has a kink
      >>> _ = assert_parity(F.l1_loss, torch.nn.functional.l1_loss, {"input": x, "target": y}, grad=["input"])
    """
    if isinstance(dtypes, str) or isinstance(modes, str):
        raise TypeError("`dtypes` and `modes` must be sequences of names, e.g. dtypes=['float32']")
    for name in dtypes:
        check_dtype_name(name, "dtypes")
    for mode in modes:
        check_mode(mode, "modes")
    comparisons = [
        comparison
        for dtype in dtypes
        for mode in modes
        for comparison in compare_parity(
            jax_fn,
            torch_fn,
            args,
            grad=grad,
            dtype=dtype,
            mode=mode,
            tolerance=tolerance,
            cotangent_seed=cotangent_seed,
        )
    ]
    raise_if_failed(comparisons, f"{_name(jax_fn)} differs from torch's {_name(torch_fn)}")
    return comparisons


def raise_if_failed(comparisons: Sequence[Comparison], subject: str) -> None:
    """Raises a `ParityError` reporting the failed `comparisons` under the heading `subject`, if any failed."""
    failed = [c for c in comparisons if not c.passed]
    if failed:
        lines = [
            f"{subject} in {len(failed)} of {len(comparisons)} comparisons:",
            *(textwrap.indent(c.report(), "  ") for c in failed),
            "passed:" if len(failed) < len(comparisons) else "passed: none",
            *(f"  {c.summary()}" for c in comparisons if c.passed),
        ]
        raise ParityError("\n".join(lines), comparisons)
