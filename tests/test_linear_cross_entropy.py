"""Parity of linear_cross_entropy (unchunked and chunked paths) and LinearCrossEntropyLoss with torch."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from jax.test_util import check_grads
from parity import check_raises, runs

import jaxloss.functional as F
from jaxloss import _linear_cross_entropy, nn
from jaxloss.nn import LinearCrossEntropyOptions
from jaxloss.parity import _linear_cross_entropy as lce_grid
from jaxloss.parity._known_differences import of_installed_torch
from jaxloss.parity._linear_cross_entropy import CASES, IN, PATHS, C, N

# The tests below draw their own data, with the grid's helpers.
rng = np.random.default_rng(1)
x, w, indices, probabilities = (
    functools.partial(draw, rng=rng) for draw in (lce_grid.x, lce_grid.w, lce_grid.indices, lce_grid.probabilities)
)


@pytest.mark.parametrize("case, dtype, mode", runs(CASES))
def test_parity(case, dtype, mode):
    case.check(dtype, mode)


@pytest.mark.parametrize("options", PATHS.values(), ids=PATHS.keys())
def test_integer_target_dtypes(options):
    """Any integer width gives the int32 answer (torch takes int64 and uint8 only)."""
    input, weight, target = jnp.asarray(x(N)), jnp.asarray(w()), indices(N)
    expected = F.linear_cross_entropy(input, weight, jnp.asarray(target, jnp.int32), options=options)
    for dtype in (jnp.uint8, jnp.int8, jnp.int16):
        np.testing.assert_allclose(
            F.linear_cross_entropy(input, weight, jnp.asarray(target, dtype), options=options), expected, rtol=1e-6
        )


@pytest.mark.parametrize("options", PATHS.values(), ids=PATHS.keys())
def test_out_of_range_target_raises_eagerly_and_is_nan_under_jit(options):
    input, weight = jnp.asarray(x(N)), jnp.asarray(w())
    jitted = jax.jit(F.linear_cross_entropy, static_argnames=("reduction", "options"))
    for bad in (jnp.array([0, 1, 2, C, 4, 0, 1]), jnp.array([0, 1, 2, -1, 4, 0, 1])):
        with pytest.raises(ValueError, match=r"^linear_cross_entropy: `target` must hold class indices in \[0, 5\)"):
            F.linear_cross_entropy(input, weight, bad, options=options)
        with pytest.raises(ValueError, match="^linear_cross_entropy: `target`"):
            jax.grad(F.linear_cross_entropy)(input, weight, bad, options=options)
        assert np.isnan(jitted(input, weight, bad, options=options))
        losses = np.asarray(jitted(input, weight, bad, reduction="none", options=options))
        assert np.isnan(losses[3]) and np.isfinite(np.delete(losses, 3)).all()


# id -> (call of `lce`, the function with the path's options bound; error; message) for every static check.
BAD_CALLS = {
    "3d_input": (lambda lce, i, W, t: lce(i[None], W, t), ValueError, r"`input` must have shape \(in_features,\)"),
    "1d_weight": (lambda lce, i, W, t: lce(i, W[0], t), ValueError, "`linear_weight` must have shape"),
    "in_features": (lambda lce, i, W, t: lce(i, W[:, 1:], t), ValueError, "`linear_weight`'s last dimension must be"),
    "bias_shape": (
        lambda lce, i, W, t: lce(i, W, t, linear_bias=W[1:, 0]),
        ValueError,
        r"`linear_bias` must have shape \(5,\)",
    ),
    "kdim_unbatched": (lambda lce, i, W, t: lce(i[0], W[:, None], t[0]), ValueError, "needs a batched `input`"),
    "weight_dtype": (
        lambda lce, i, W, t: lce(i, W.astype(jnp.float16), t),
        TypeError,
        "`linear_weight` must have the dtype of `input`",
    ),
    "bias_dtype": (
        lambda lce, i, W, t: lce(i, W, t, linear_bias=W[:, 0].astype(jnp.float16)),
        TypeError,
        "`linear_bias` must have the dtype of `input`",
    ),
    "integer_input": (
        lambda lce, i, W, t: lce(i.astype(int), W.astype(int), t),
        TypeError,
        "`input` must be a floating-point array",
    ),
    "probs_ignore_index": (
        lambda lce, i, W, t: lce(i, W, i @ W.T, ignore_index=-100),
        ValueError,
        "`ignore_index` must be None",
    ),
    "integer_probs": (lambda lce, i, W, t: lce(i, W, jnp.ones((N, C), int)), TypeError, "holds class probabilities"),
    "target_shape": (
        lambda lce, i, W, t: lce(i, W, t[:-1]),
        ValueError,
        r"`target` must be class indices of shape \(7,\) or class probabilities of the logits' "
        r"shape \(7, 5\)",
    ),
    "float_indices": (lambda lce, i, W, t: lce(i, W, t.astype(float)), TypeError, "must be an integer array"),
    "class_weight_shape": (
        lambda lce, i, W, t: lce(i, W, t, weight=W[0]),
        ValueError,
        r"`weight` must have shape \(5,\)",
    ),
    "class_weight_dtype": (
        lambda lce, i, W, t: lce(i, W, t, weight=W[:, 0].astype(jnp.float16)),
        TypeError,
        "`weight` must have the dtype of `input`",
    ),
    "reduction": (lambda lce, i, W, t: lce(i, W, t, reduction="batchmean"), ValueError, "`reduction` must be one of"),
    "label_smoothing": (
        lambda lce, i, W, t: lce(i, W, t, label_smoothing=1.5),
        ValueError,
        "`label_smoothing` must be at most 1.0",
    ),
    "ignore_index_type": (
        lambda lce, i, W, t: lce(i, W, t, ignore_index=1.5),
        TypeError,
        "`ignore_index` must be an int",
    ),
    "options_type": (
        lambda lce, i, W, t: lce(i, W, t, options="chunked"),
        TypeError,
        "`options` must be a jaxloss LinearCrossEntropyOptions or None",
    ),
    "options_conflict": (
        lambda lce, i, W, t: lce(
            i, W, t, options=LinearCrossEntropyOptions(batch_chunk_size=3, chunking_method="aspect_ratio")
        ),
        ValueError,
        r"`options`: batch_chunk_size \(=3\) and chunking_method \('aspect_ratio'\) give different",
    ),
}


@pytest.mark.parametrize("options", PATHS.values(), ids=PATHS.keys())
@pytest.mark.parametrize("name", BAD_CALLS)
def test_bad_input(name, options):
    call, error, match = BAD_CALLS[name]
    lce = functools.partial(F.linear_cross_entropy, options=options)
    args = jnp.ones((N, IN)), jnp.ones((C, IN)), jnp.zeros(N, jnp.int32)
    check_raises(lambda: call(lce, *args), error, f"^linear_cross_entropy: .*{match}")


OPTION_SETS = [
    dict(),
    dict(batch_chunk_size=3),
    dict(batch_chunk_size=1000),
    dict(chunking_method=None),
    dict(chunking_method=None, batch_chunk_size=2),
    dict(chunking_method="aspect_ratio"),
    dict(chunking_method="aspect_ratio:4"),
]


@pytest.mark.parametrize("fields", OPTION_SETS, ids=str)
def test_chunk_size_is_torchs(fields):
    """The rows per chunk are those torch's chunked op uses (float32 on its fallback device)."""
    default_rule_differs = [
        d for d in of_installed_torch() if (d.loss, d.what) == ("linear_cross_entropy", "chunk_size")
    ]
    if not fields.keys() & {"chunking_method", "batch_chunk_size"} and default_rule_differs:  # the default rule
        pytest.skip(f"known difference of torch {torch.__version__}: {default_rule_differs[0].description}")
    shapes = [(8192, 512, 32768), (7, 4, 5), (1, 4, 5), (0, 4, 5), (100, 3, 1000), (5, 100, 10)]
    for num_rows, in_features, num_classes in shapes:
        torch_options = torch.nn.LinearCrossEntropyOptions(**fields)
        expected = torch_options._adjust(num_rows, in_features, num_classes, torch.float32)
        got = LinearCrossEntropyOptions(**fields).chunk_size(num_rows, in_features, num_classes)
        assert got == expected.batch_chunk_size, (num_rows, in_features, num_classes)


BAD_OPTIONS = [
    dict(acc_policy="fast"),
    dict(chunking_method="aspect_ratio:0"),
    dict(chunking_method="rows"),
    dict(batch_chunk_size=0),
    dict(batch_chunk_size=2.0),
    dict(acc_dtype="int32"),
]


@pytest.mark.parametrize("fields", BAD_OPTIONS, ids=str)
def test_bad_options_raise_as_in_torch(fields):
    torch_fields = {**fields, "acc_dtype": torch.int32} if "acc_dtype" in fields else fields
    with pytest.raises(ValueError):
        torch.nn.LinearCrossEntropyOptions(**torch_fields)
    with pytest.raises(ValueError, match=f"^LinearCrossEntropyOptions: `{next(iter(fields))}` must be"):
        LinearCrossEntropyOptions(**fields)


def test_accumulation_and_retain_graph_options_change_nothing():
    args = jnp.asarray(x(N)), jnp.asarray(w()), jnp.asarray(indices(N))
    expected = jax.value_and_grad(F.linear_cross_entropy, (0, 1))(
        *args, options=LinearCrossEntropyOptions(batch_chunk_size=3)
    )
    ignored = dict(acc_policy="accurate", acc_dtype=jnp.bfloat16, allow_retain_graph=True)
    got = jax.value_and_grad(F.linear_cross_entropy, (0, 1))(
        *args, options=LinearCrossEntropyOptions(batch_chunk_size=3, **ignored)
    )
    jax.tree.map(np.testing.assert_array_equal, got, expected)


def compiled_bytes(options, num_rows=1024, in_features=32, num_classes=4096):
    """Temporary + output bytes of the compiled value_and_grad (w.r.t. input and linear_weight)."""

    def loss(input, linear_weight, target):
        return F.linear_cross_entropy(input, linear_weight, target, options=options)

    shapes = (
        jax.ShapeDtypeStruct((num_rows, in_features), jnp.float32),
        jax.ShapeDtypeStruct((num_classes, in_features), jnp.float32),
        jax.ShapeDtypeStruct((num_rows,), jnp.int32),
    )
    memory = jax.jit(jax.value_and_grad(loss, (0, 1))).lower(*shapes).compile().memory_analysis()
    return memory.temp_size_in_bytes + memory.output_size_in_bytes


def test_chunked_path_never_holds_the_logits():
    """A structural check of XLA's buffer assignment, not a timing: the (N, C) logits (16 MiB here) and their
    gradient are buffers of the unchunked program only."""
    logits_bytes = 1024 * 4096 * 4
    unchunked, chunked = compiled_bytes(None), compiled_bytes(LinearCrossEntropyOptions())
    assert unchunked > 2 * logits_bytes
    assert chunked < logits_bytes / 4 and chunked < unchunked / 10, (chunked, unchunked)


@pytest.mark.parametrize("options", PATHS.values(), ids=PATHS.keys())
def test_vmap(options):
    """vmap over 3 batches (values and the gradient) equals torch batch by batch."""
    inputs, weights, targets = x(3, N), w(), indices((3, N), ignored=2)

    def loss(input, target):
        return F.linear_cross_entropy(
            input, jnp.asarray(weights), target, label_smoothing=0.1, reduction="sum", options=options
        )

    values, grads = jax.vmap(jax.value_and_grad(loss))(jnp.asarray(inputs), jnp.asarray(targets))
    for input, target, value, grad in zip(inputs, targets, values, grads, strict=True):
        tensor = torch.tensor(input, dtype=torch.float32, requires_grad=True)
        expected = torch.nn.functional.linear_cross_entropy(
            tensor,
            torch.tensor(weights, dtype=torch.float32),
            torch.tensor(target),
            label_smoothing=0.1,
            reduction="sum",
        )
        expected.backward()
        np.testing.assert_allclose(value, expected.detach().numpy(), rtol=2e-5)
        np.testing.assert_allclose(grad, tensor.grad.numpy(), rtol=2e-5, atol=2e-6)


def test_chunked_path_supports_higher_order_and_forward_mode():
    """Unlike torch's chunked op: Hessian-vector products and jvp equal the unchunked path's."""
    with jax.enable_x64():
        args = jnp.asarray(x(N)), jnp.asarray(w())
        target, tangents = jnp.asarray(indices(N, ignored=1)), (jnp.asarray(x(N)), jnp.asarray(w()))

        def hvp_and_jvp(options):
            def loss(input, linear_weight):
                return F.linear_cross_entropy(input, linear_weight, target, label_smoothing=0.2, options=options)

            hvp = jax.jvp(jax.grad(loss, (0, 1)), args, tangents)[1]
            return hvp, jax.jvp(loss, args, tangents)

        jax.tree.map(
            functools.partial(np.testing.assert_allclose, rtol=1e-10, atol=1e-12),
            hvp_and_jvp(LinearCrossEntropyOptions(batch_chunk_size=3)),
            hvp_and_jvp(None),
        )


# --- LinearCrossEntropyLoss ---------------------------------------------------------------------------------


@pytest.mark.parametrize("options", PATHS.values(), ids=PATHS.keys())
def test_class_matches_torch_module(options):
    """A torch module's parameters load as they are; the loss and the gradients of the input and of the
    parameters (``jax.grad`` with respect to the instance) are torch's."""
    class_weight = rng.uniform(0.5, 1.5, C)
    settings = dict(out_features=(3,), bias=True, ignore_index=2, label_smoothing=0.1, reduction="sum")
    module = torch.nn.LinearCrossEntropyLoss(IN, C, weight=torch.tensor(class_weight), dtype=torch.float64, **settings)
    input, target = x(N), indices((N, 3), ignored=3, ignore_index=2)
    tensor = torch.tensor(input, requires_grad=True)
    expected = module(tensor, torch.tensor(target))
    expected.backward()
    with jax.enable_x64():
        loss = nn.LinearCrossEntropyLoss(
            IN,
            C,
            **settings,
            weight=jnp.asarray(class_weight),
            options=options,
            linear_weight=jnp.asarray(module.linear.weight.detach().numpy()),
            linear_bias=jnp.asarray(module.linear.bias.detach().numpy()),
        )
        value, (grad_loss, grad_input) = jax.value_and_grad(lambda module, i: module(i, jnp.asarray(target)), (0, 1))(
            loss, jnp.asarray(input)
        )
    tolerance = dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(value, expected.detach().numpy(), **tolerance)
    np.testing.assert_allclose(grad_input, tensor.grad.numpy(), **tolerance)
    np.testing.assert_allclose(grad_loss.linear_weight, module.linear.weight.grad.numpy(), **tolerance)
    np.testing.assert_allclose(grad_loss.linear_bias, module.linear.bias.grad.numpy(), **tolerance)


def test_class_initialises_like_torch_linear():
    loss = nn.LinearCrossEntropyLoss(16, 5, out_features=(2, 3), bias=True, key=jax.random.key(0))
    torch_module = torch.nn.LinearCrossEntropyLoss(16, 5, out_features=(2, 3), bias=True)
    pairs = ((loss.linear_weight, torch_module.linear.weight), (loss.linear_bias, torch_module.linear.bias))
    for ours, theirs in pairs:
        assert ours.shape == tuple(theirs.shape) and ours.dtype == jnp.float32
        bound = 1 / np.sqrt(16)  # U(-1/sqrt(in), 1/sqrt(in)), as torch's
        assert np.abs(ours).max() <= bound and np.abs(theirs.detach().numpy()).max() <= bound
        assert np.abs(ours).max() > 0.8 * bound
    again = nn.LinearCrossEntropyLoss(16, 5, out_features=(2, 3), bias=True, key=jax.random.key(0))
    np.testing.assert_array_equal(again.linear_weight, loss.linear_weight)
    half = nn.LinearCrossEntropyLoss(16, 5, dtype=jnp.float16, key=jax.random.key(1))
    assert half.linear_weight.dtype == jnp.float16 and half.linear_bias is None
    # No bias, no class weight: the weight is the only array leaf (label_smoothing, a float, is a leaf too).
    (leaf,) = [leaf for leaf in jax.tree.leaves(half) if isinstance(leaf, jax.Array)]
    assert leaf is half.linear_weight


def test_class_loads_a_torch_weight_with_replace():
    module = torch.nn.LinearCrossEntropyLoss(IN, C)
    loss = dataclasses.replace(
        nn.LinearCrossEntropyLoss(IN, C, key=jax.random.key(0)),
        linear_weight=jnp.asarray(module.linear.weight.detach().numpy()),
    )
    input, target = x(N), indices(N)
    expected = module(torch.tensor(input, dtype=torch.float32), torch.tensor(target))
    np.testing.assert_allclose(loss(jnp.asarray(input), jnp.asarray(target)), expected.detach().numpy(), rtol=2e-5)


def test_class_bad_construction():
    with pytest.raises(RuntimeError, match="label_smoothing"):
        torch.nn.LinearCrossEntropyLoss(IN, C, label_smoothing=-0.1)
    with pytest.raises(ValueError, match=r"^LinearCrossEntropyLoss: `label_smoothing` must lie in \[0, 1\]"):
        nn.LinearCrossEntropyLoss(IN, C, label_smoothing=-0.1, key=jax.random.key(0))
    with pytest.raises(ValueError, match="^LinearCrossEntropyLoss: pass `key`"):
        nn.LinearCrossEntropyLoss(IN, C)
    with pytest.raises(ValueError, match="^LinearCrossEntropyLoss: pass `key`"):
        nn.LinearCrossEntropyLoss(IN, C, bias=True, linear_weight=jnp.ones((C, IN)))


# --- label_smoothing is data: traced, differentiated, checked as a value under jit ----------------------------

SMOOTHING_TARGETS = {"index": np.array([1, 0, 1, 3, 2, 4, 1]), "probs": probabilities(N, C)}
SMOOTHING_ARRAYS = dict(
    input=x(N), linear_weight=w(), linear_bias=rng.standard_normal(C), weight=rng.uniform(0.2, 2, C)
)


@pytest.mark.parametrize("options", PATHS.values(), ids=PATHS.keys())
@pytest.mark.parametrize("targets", SMOOTHING_TARGETS)
def test_label_smoothing_derivatives(targets, options):
    """d/dε, and (on the chunked path, jaxloss's own code; the unchunked one is cross_entropy's) the derivatives
    in the input and ε together, by finite differences (orders 1 and 2, forward and reverse mode), per row."""
    with jax.enable_x64(True):
        arrays = {name: jnp.asarray(array) for name, array in SMOOTHING_ARRAYS.items()}
        target = jnp.asarray(SMOOTHING_TARGETS[targets])
        ignore_index = 1 if targets == "index" else None

        def loss(input, eps):
            return F.linear_cross_entropy(
                input,
                arrays["linear_weight"],
                target,
                linear_bias=arrays["linear_bias"],
                weight=arrays["weight"],
                reduction="none",
                ignore_index=ignore_index,
                label_smoothing=eps,
                options=options,
            )

        check_grads(lambda eps: loss(arrays["input"], eps), (0.3,), order=2, modes=("fwd", "rev"))
        if options is not None:
            check_grads(loss, (arrays["input"], 0.3), order=1, modes=("fwd", "rev"))
        np.testing.assert_array_equal(jax.jacrev(loss, 1)(arrays["input"], -0.4), np.zeros(N))


@pytest.mark.parametrize("options", PATHS.values(), ids=PATHS.keys())
@pytest.mark.parametrize("targets", SMOOTHING_TARGETS)
def test_traced_label_smoothing_matches_torch(targets, options):
    """ε traced by the caller's jit: torch's values and gradients for the Python value, ε <= 0 and NaN included
    (no smoothing)."""
    target = SMOOTHING_TARGETS[targets]
    differentiated = ("input", "linear_weight", "linear_bias")  # torch refuses to differentiate `weight`
    tensors = {
        name: torch.tensor(array, requires_grad=name in differentiated) for name, array in SMOOTHING_ARRAYS.items()
    }
    with jax.enable_x64(True):
        arrays = {name: jnp.asarray(array) for name, array in SMOOTHING_ARRAYS.items()}

        @jax.jit
        def value_and_grads(arrays, eps):
            def loss(arrays):
                return F.linear_cross_entropy(
                    **arrays, target=jnp.asarray(target), reduction="sum", label_smoothing=eps, options=options
                )

            return jax.value_and_grad(loss)(arrays)

        for eps in (-0.5, 0.0, 0.1, 1.0, float("nan")):
            expected = torch.nn.functional.linear_cross_entropy(
                **tensors, target=torch.tensor(target), reduction="sum", label_smoothing=eps
            )
            expected_grads = torch.autograd.grad(expected, [tensors[name] for name in differentiated])
            value, grads = value_and_grads(arrays, eps)
            np.testing.assert_allclose(value, expected.detach().numpy(), rtol=1e-12, err_msg=f"ε={eps}")
            for name, expected_grad in zip(differentiated, expected_grads, strict=True):
                np.testing.assert_allclose(
                    grads[name], expected_grad, rtol=1e-11, atol=1e-13, err_msg=f"{name} ε={eps}"
                )


@pytest.mark.parametrize("options", PATHS.values(), ids=PATHS.keys())
@pytest.mark.parametrize("targets", SMOOTHING_TARGETS)
def test_label_smoothing_above_one_is_a_value_check(targets, options):
    """ε > 1: ValueError naming it when its value is known; traced, a NaN loss and NaN derivatives for every
    operand (and ε)."""
    arrays = {name: jnp.asarray(array, jnp.float32) for name, array in SMOOTHING_ARRAYS.items()}
    arrays["target"] = jnp.asarray(SMOOTHING_TARGETS[targets])

    def loss(arrays, eps, reduction="mean"):
        return F.linear_cross_entropy(**arrays, reduction=reduction, label_smoothing=eps, options=options)

    with pytest.raises(ValueError, match=r"^linear_cross_entropy: `label_smoothing` must be at most 1.0; got 1.5"):
        loss(arrays, jnp.float32(1.5))
    with pytest.raises(ValueError, match=r"^linear_cross_entropy: `label_smoothing` must be at most 1.0"):
        jax.grad(loss, 1)(arrays, 1.5)
    floating = {name: array for name, array in arrays.items() if jnp.issubdtype(array.dtype, jnp.floating)}
    value, grads = jax.jit(jax.value_and_grad(lambda f, e: loss({**arrays, **f}, e), (0, 1)))(floating, 1.5)
    assert np.isnan(value)
    for grad in jax.tree.leaves(grads):
        assert np.all(np.isnan(grad))
    assert np.all(np.isnan(jax.jit(lambda e: loss(arrays, e, "none"))(1.5)))


def test_label_smoothing_known_off_compiles_without_the_smoothing_term():
    """ε known before the call to be <= 0 or NaN (the default included) is one compilation, without the
    smoothing term; positive values are another."""
    input, linear_weight = jnp.asarray(x(3), jnp.float32), jnp.asarray(w(), jnp.float32)  # shapes of no other test
    target = jnp.asarray(indices(3))
    core = _linear_cross_entropy._linear_cross_entropy.jitted
    before = core._cache_size()
    F.linear_cross_entropy(input, linear_weight, target)
    for eps in (0.0, -0.5, float("nan"), np.float32(0)):
        F.linear_cross_entropy(input, linear_weight, target, label_smoothing=eps)
    assert core._cache_size() == before + 1
    for eps in (0.1, 1, np.float32(0.2)):
        F.linear_cross_entropy(input, linear_weight, target, label_smoothing=eps)
    assert core._cache_size() == before + 2
