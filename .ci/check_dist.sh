#!/usr/bin/env bash
# Builds jaxloss's sdist and wheel, installs the wheel alone into a clean virtual environment, and checks that
# the losses work there with nothing but jax and numpy (and their own dependencies) beside them.
# Usage: .ci/check_dist.sh PYTHON   (a Python with `build` installed, e.g. .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:?usage: .ci/check_dist.sh PYTHON}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$python" -m build --sdist --wheel --outdir "$work/dist" . > "$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
wheel=$(ls "$work"/dist/jaxloss-*.whl)
sdist=$(ls "$work"/dist/jaxloss-*.tar.gz)
echo "built $(basename "$sdist") and $(basename "$wheel")"
unzip -l "$wheel" | grep -q 'jaxloss/py.typed' || { echo "the wheel lacks jaxloss/py.typed"; exit 1; }
if unzip -l "$wheel" | grep -qE ' (experiments|tests|benchmarks|docs)/'; then
    echo "the wheel holds more than the library:"; unzip -l "$wheel"; exit 1
fi

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q "$wheel"
# From an empty folder, so that the checkout is not on the path: the installed wheel is what gets imported.
cd "$work"
"$work/venv/bin/python" - <<'PY'
import importlib.metadata
import importlib.util

import jax
import jax.numpy as jnp

import jaxloss
import jaxloss.functional as F
from jaxloss import nn

assert "site-packages" in jaxloss.__file__, jaxloss.__file__
assert jaxloss.__version__ == importlib.metadata.version("jaxloss"), jaxloss.__version__
required = importlib.metadata.requires("jaxloss")
assert sorted(r.split(">")[0] for r in required if "extra ==" not in r) == ["jax", "numpy"], required
for absent in ("flax", "optax", "orbax", "tensorflow_datasets", "torch"):
    assert importlib.util.find_spec(absent) is None, f"{absent} was installed with the wheel"

logits, labels = jnp.array([[0.1, 0.2, 0.3]]), jnp.array([1])
loss, grad = jax.value_and_grad(F.cross_entropy)(logits, labels)
assert abs(float(loss) - 1.1019) < 1e-4, loss
assert jnp.allclose(grad, jax.nn.softmax(logits) - jax.nn.one_hot(labels, 3)), grad
assert float(nn.MSELoss()(logits, jnp.zeros_like(logits))) > 0
print(f"jaxloss {jaxloss.__version__} from the wheel: cross_entropy {float(loss):.4f}, gradient {grad.tolist()}")
PY
