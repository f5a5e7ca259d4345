"""jaxloss.checkify: the value checks that cannot raise under jit become checkify errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss
import jaxloss.functional as F

logits = jnp.zeros((2, 3))
# (call with bad data, call with good data, expected start of the error message)
CASES = {
    "cross_entropy": (
        lambda: (F.cross_entropy, logits, jnp.array([0, 3])),
        lambda: (F.cross_entropy, logits, jnp.array([0, 2])),
        "cross_entropy: `target` must hold class indices in [0, 3)",
    ),
    "binary_cross_entropy": (
        lambda: (F.binary_cross_entropy, jnp.array([0.5, 1.5]), jnp.array([1.0, 0.0])),
        lambda: (F.binary_cross_entropy, jnp.array([0.5, 0.5]), jnp.array([1.0, 0.0])),
        "binary_cross_entropy: all elements of `input` must lie in [0, 1]",
    ),
    "gaussian_nll_loss": (
        lambda: (F.gaussian_nll_loss, jnp.zeros(2), jnp.zeros(2), jnp.array([1.0, -1.0])),
        lambda: (F.gaussian_nll_loss, jnp.zeros(2), jnp.zeros(2), jnp.array([1.0, 1.0])),
        "gaussian_nll_loss: `var`",
    ),
}


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("jit", [False, True], ids=["checkify", "jit_checkify"])
def test_bad_data_is_a_checkify_error(name, jit):
    bad, good, message = CASES[name]
    loss_fn, *args = bad()
    checked = jaxloss.checkify(loss_fn)
    if jit:
        checked = jax.jit(checked)
    error, loss = checked(*args)
    assert error.get() is not None and error.get().startswith(message), error.get()
    assert np.isnan(loss)
    with pytest.raises(Exception, match="must"):
        error.throw()
    loss_fn, *args = good()
    error, loss = checked(*args)
    assert error.get() is None
    np.testing.assert_allclose(loss, loss_fn(*args))


def test_under_vmap():
    checked = jax.jit(jaxloss.checkify(jax.vmap(F.cross_entropy)))
    error, losses = checked(jnp.zeros((2, 4, 3)), jnp.array([[0, 1, 2, 0], [0, 1, 7, 0]]))
    assert error.get().startswith("cross_entropy: `target` must hold class indices")
    assert np.isfinite(losses[0]) and np.isnan(losses[1])


def test_plain_jit_is_unchanged():
    """Outside jaxloss.checkify, jit still gives NaN and no error to functionalise."""
    assert np.isnan(jax.jit(F.cross_entropy)(logits, jnp.array([0, 3])))
