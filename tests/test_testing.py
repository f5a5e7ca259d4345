"""`jaxloss.testing`, as a user's test suite uses it: right functions pass, wrong ones fail with a report that says
what differs, where and by how much."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jaxloss.functional as F
from jaxloss.testing import (
    DEFAULT_TOLERANCES,
    ParityError,
    Tolerance,
    assert_parity,
    compare_parity,
    conv_kernel_from_torch,
    conv_kernel_to_torch,
    linear_kernel_from_torch,
    linear_kernel_to_torch,
    state_dict_to_flax,
    to_jax,
    to_numpy,
    to_torch,
)

# Differences of 0 at [0] and [2]: |x - y| has a kink there, where torch's gradient is 0.
TIES = {"input": np.array([0.0, 1.5, -2.0, 3.0]), "target": np.array([0.0, 0.5, -2.0, 1.0])}


def abs_based_l1(input, target):
    """A plausible port of l1_loss that is wrong at ties: jnp.abs's derivative at 0 is 1, torch's sign(0) is 0."""
    return jnp.abs(input - target).mean()


def test_the_right_l1_passes():
    comparisons = assert_parity(F.l1_loss, torch.nn.functional.l1_loss, TIES, grad=["input", "target"])
    assert len(comparisons) == 12  # value, d/dinput, d/dtarget x float32, float64 x eager, jit
    assert all(c.passed for c in comparisons)


def test_a_wrong_l1_at_a_tie_fails_with_a_report():
    with pytest.raises(ParityError) as failure:
        assert_parity(abs_based_l1, torch.nn.functional.l1_loss, TIES, grad=["input", "target"])
    report = str(failure.value)
    assert report.startswith("abs_based_l1 differs from torch's l1_loss in 8 of 12 comparisons:")
    # Which gradient, in which dtype and mode, how many elements, the tolerance; where; the values.
    assert "d/dinput (float32, jit): 2 of 4 elements differ beyond rtol=2e-05, atol=2e-06" in report
    assert "beyond the tolerance at [0], [2]\n" in report
    assert re.search(r"worst at \[[02]\]: jax -?0\.\d+, torch -?0\.0 \(difference 0\.\d+\)", report)
    # The values agree, and the report says so.
    assert "passed:\n  value (float32, eager): ok, max abs error 0, max rel error 0" in report
    failed = [c for c in failure.value.comparisons if not c.passed]
    assert {c.what for c in failed} == {"d/dinput", "d/dtarget"}
    assert all(c.mismatched == 2 and c.size == 4 and c.max_rel_error == np.inf for c in failed)


def test_nan_and_infinities_on_one_side_are_located():
    def jax_fn(x):
        return jnp.where(x > 2, jnp.nan, jnp.where(x < -2, -jnp.inf, x))

    def torch_fn(x):
        return torch.where(x < -2, torch.inf, torch.where(x == 0, torch.nan, x))

    x = np.array([[0.0, 3.0], [-3.0, 1.0]])
    (value,) = compare_parity(jax_fn, torch_fn, {"x": x})
    assert not value.passed and value.mismatched == 3
    assert value.details == (
        "NaN in jax only at [0, 1]",
        "NaN in torch only at [0, 0]",
        "infinities of opposite signs at [1, 0]",
    )

    def torch_like_jax(x):
        return torch.where(x > 2, torch.nan, torch.where(x < -2, -torch.inf, x))

    (same,) = compare_parity(jax_fn, torch_like_jax, {"x": x})  # NaN meets NaN, -inf meets -inf
    assert same.passed


def test_shape_dtype_and_structure_disagreements_are_named():
    x = {"x": np.ones((2, 3))}
    shape = compare_parity(lambda x: x.sum(0), lambda x: x.sum(1), x)
    assert [c.summary() for c in shape] == ["value (float32, eager): shape (3,), torch's (2,)"]
    dtype = compare_parity(lambda x: x.astype(jnp.float16), lambda x: x, x)
    assert dtype[0].problem == "dtype float16, expected float32"
    structure = compare_parity(lambda x: (x, x), lambda x: x, x)
    assert structure[0].problem == "jax returns value[0], value[1], torch value"


def test_structured_arguments_and_outputs():
    """A model's forward: torch-layout weights as a dict argument, two outputs, gradients per weight."""
    rng = np.random.default_rng(0)
    state = {"weight": rng.normal(size=(3, 4)), "bias": rng.normal(size=3)}
    args = {"state": state, "x": rng.normal(size=(5, 4)), "labels": np.array([0, 2, 1, 1, 0])}

    def jax_forward(state, x, labels):
        logits = jnp.tanh(x @ linear_kernel_from_torch(state["weight"]) + state["bias"])
        return {"loss": F.cross_entropy(logits, labels), "logits": logits}

    def torch_forward(state, x, labels):
        logits = torch.tanh(torch.nn.functional.linear(x, state["weight"], state["bias"]))
        return {"loss": torch.nn.functional.cross_entropy(logits, labels), "logits": logits}

    comparisons = assert_parity(jax_forward, torch_forward, args, grad=["state", "x"], modes=["jit"])
    assert [c.what for c in comparisons[:5]] == [
        "value['logits']",
        "value['loss']",
        "d/dstate['bias']",
        "d/dstate['weight']",
        "d/dx",
    ]


def test_positional_arguments_and_integer_outputs():
    x = np.array([[0.5, 2.0, -1.0], [3.0, 0.0, 1.0]])
    comparisons = assert_parity(
        lambda x, k: (jnp.argmax(x, axis=1), jnp.sin(x) * k),
        lambda x, k: (torch.argmax(x, dim=1), torch.sin(x) * k),
        (x, 3),
        grad=[0],
    )
    # torch's int64 argmax is JAX's default integer: int32, or int64 under x64 (the float64 runs).
    assert {c.what for c in comparisons} == {"value[0]", "value[1]", "d/dargs[0]"}
    with pytest.raises(ParityError, match=r"value \(float32, eager\): 1 of 2 elements differ \(compared exactly\)"):
        assert_parity(lambda x: jnp.argmax(x, axis=1) * 0, lambda x: torch.argmax(x, dim=1), [x], dtypes=["float32"])


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_16_bit_results_are_held_to_torch_in_float32(dtype):
    x = np.random.default_rng(1).normal(size=(4, 6))
    comparisons = assert_parity(
        lambda x: jax.nn.softmax(x, axis=-1), lambda x: torch.softmax(x, dim=-1), [x], grad=[0], dtypes=[dtype]
    )
    assert comparisons[0].tolerance == DEFAULT_TOLERANCES[dtype]
    # A port that returns float32 for 16-bit inputs is not what torch's 16-bit kernels return.
    with pytest.raises(ParityError, match=f"dtype float32, expected {dtype}"):
        assert_parity(lambda x: x.astype(jnp.float32), lambda x: x, [x], dtypes=[dtype])


def test_tolerances_per_dtype():
    x = [np.array([1.0, 2.0])]
    off = (lambda x: x * (1 + 1e-6), lambda x: x)  # 1e-6 relative: beyond float64's tolerance, within float32's
    with pytest.raises(ParityError, match=r"value \(float64, eager\)"):
        assert_parity(*off, x, modes=["eager"])
    assert_parity(*off, x, tolerance={"float64": Tolerance(rtol=2e-6, atol=0)})
    assert_parity(*off, x, tolerance=Tolerance(rtol=2e-6, atol=0))


def test_bad_arguments_are_named():
    x = {"x": np.ones(3)}
    with pytest.raises(ValueError, match=r"`grad` names \['y'\], which are not in `args` \(\['x'\]\)"):
        compare_parity(jnp.sin, torch.sin, x, grad=["y"])
    with pytest.raises(ValueError, match="`dtype` must be one of"):
        compare_parity(jnp.sin, torch.sin, x, dtype="float8")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`modes` must be one of"):
        assert_parity(jnp.sin, torch.sin, x, modes=["pjit"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="`dtypes` and `modes` must be sequences"):
        assert_parity(jnp.sin, torch.sin, x, dtypes="float32")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`rtol` must be a number >= 0"):
        Tolerance(rtol=-1, atol=0)
    with pytest.raises(TypeError, match=r"`torch_fn` returned float at value, expected torch tensors"):
        compare_parity(lambda x: x.sum(), lambda x: float(x.sum()), x)


def test_conversions_round_trip():
    tree = {"w": torch.randn(2, 3, dtype=torch.float64), "i": torch.arange(4), "b": torch.ones(2).bfloat16()}
    as_numpy = to_numpy(tree)
    assert {k: v.dtype.name for k, v in as_numpy.items()} == {"w": "float64", "i": "int64", "b": "bfloat16"}
    as_jax = to_jax(tree, dtype=jnp.float32)
    assert as_jax["w"].dtype == jnp.float32 and as_jax["i"].dtype == jnp.int32 and as_jax["b"].dtype == jnp.float32
    back = to_torch(as_numpy, requires_grad=True)
    assert back["w"].requires_grad and not back["i"].requires_grad and back["b"].dtype == torch.bfloat16
    assert all(torch.equal(back[k], tree[k]) for k in tree)


def test_layouts_compute_torch_layers():
    rng = np.random.default_rng(2)
    weight, x = rng.normal(size=(8, 3, 5, 5)), rng.normal(size=(2, 3, 12, 12))

    def jax_conv(x, weight):  # NCHW in and out, as torch; the kernel in Flax's HWIO
        nhwc = jnp.moveaxis(x, 1, -1)
        y = jax.lax.conv_general_dilated(
            nhwc, conv_kernel_from_torch(weight), (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        return jnp.moveaxis(y, -1, 1)

    assert_parity(
        jax_conv, torch.nn.functional.conv2d, [x, weight], grad=[0, 1], tolerance={"float32": Tolerance(1e-5, 1e-5)}
    )
    np.testing.assert_array_equal(conv_kernel_to_torch(conv_kernel_from_torch(weight)), weight)
    linear = rng.normal(size=(4, 7))
    np.testing.assert_array_equal(linear_kernel_to_torch(linear_kernel_from_torch(linear)), linear)


def test_state_dict_to_flax():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv1d(2, 4, 3), torch.nn.LayerNorm(6), torch.nn.Flatten(), torch.nn.Linear(24, 5)
    )
    params = state_dict_to_flax(model.state_dict(), {"0": "conv", "1": "norm", "3": "dense"})
    assert jax.tree.map(jnp.shape, params) == {
        "conv": {"kernel": (3, 2, 4), "bias": (4,)},
        "norm": {"scale": (6,), "bias": (6,)},
        "dense": {"kernel": (24, 5), "bias": (5,)},
    }
    np.testing.assert_array_equal(params["dense"]["kernel"], model[3].weight.detach().numpy().T)
    with pytest.raises(
        ValueError, match=r"state_dict key '1.weight' is not the weight or bias of a module in `modules`"
    ):
        state_dict_to_flax(model.state_dict(), {"0": "conv", "3": "dense"})
