"""The library's floor: `import jaxloss` needs only jax and numpy; the Tudui application lives in experiments/."""

import subprocess
import sys

# The application's stack and the parity judge; none of them may load with the losses.
APPLICATION_PACKAGES = ("flax", "optax", "orbax", "tensorflow_datasets", "tensorflow", "torch", "experiments")


def test_importing_the_losses_loads_no_application_package():
    code = (
        "import sys\n"
        "import jaxloss, jaxloss.functional, jaxloss.nn\n"
        "import jax, jax.numpy as jnp\n"
        "value, grad = jax.value_and_grad(jaxloss.functional.cross_entropy)(jnp.zeros((2, 3)), jnp.array([0, 2]))\n"
        "assert abs(float(value) - 1.0986123) < 1e-6, value\n"
        "print(' '.join(sorted({name.split('.')[0] for name in sys.modules})))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(result.stdout.split())
    assert "jax" in loaded and "numpy" in loaded
    assert loaded.isdisjoint(APPLICATION_PACKAGES), sorted(loaded.intersection(APPLICATION_PACKAGES))
