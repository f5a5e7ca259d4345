"""The public surface: torch's names and signatures, `__all__`, and classes that equal their functions."""

import ast
import inspect
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jaxloss
import jaxloss.functional as F
import jaxloss.parity
import jaxloss.testing
from jaxloss import nn

DEPRECATED = {"size_average", "reduce"}
# torch parameters jaxloss drops: the deprecated ones, and LinearCrossEntropyLoss's `device` (JAX places arrays
# with jax.device_put, not at construction).
DROPPED = DEPRECATED | {"device"}

# torch.nn.functional name -> torch.nn class name.
LOSSES = {
    "l1_loss": "L1Loss",
    "mse_loss": "MSELoss",
    "cross_entropy": "CrossEntropyLoss",
    "nll_loss": "NLLLoss",
    "binary_cross_entropy": "BCELoss",
    "binary_cross_entropy_with_logits": "BCEWithLogitsLoss",
    "smooth_l1_loss": "SmoothL1Loss",
    "huber_loss": "HuberLoss",
    "kl_div": "KLDivLoss",
    "poisson_nll_loss": "PoissonNLLLoss",
    "gaussian_nll_loss": "GaussianNLLLoss",
    "soft_margin_loss": "SoftMarginLoss",
    "multilabel_soft_margin_loss": "MultiLabelSoftMarginLoss",
    "multilabel_margin_loss": "MultiLabelMarginLoss",
    "multi_margin_loss": "MultiMarginLoss",
    "margin_ranking_loss": "MarginRankingLoss",
    "hinge_embedding_loss": "HingeEmbeddingLoss",
    "cosine_embedding_loss": "CosineEmbeddingLoss",
    "triplet_margin_loss": "TripletMarginLoss",
    "triplet_margin_with_distance_loss": "TripletMarginWithDistanceLoss",
    "ctc_loss": "CTCLoss",
    "linear_cross_entropy": "LinearCrossEntropyLoss",
}

# Constructor arguments of the classes that need some: LinearCrossEntropyLoss owns a linear layer.
CONSTRUCTOR_ARGS = {"LinearCrossEntropyLoss": dict(in_features=3, num_classes=4, key=jax.random.key(0))}


def described(parameters) -> list[tuple[str, object, inspect._ParameterKind]]:
    return [(p.name, p.default, p.kind) for p in parameters if p.name not in DROPPED]


def assert_torch_signature_then_keyword_extras(ours, theirs):
    """Our parameters are torch's (minus the deprecated ones), in order, followed only by keyword-only extras."""
    ours, theirs = described(ours), described(theirs)
    assert ours[: len(theirs)] == theirs
    extras = ours[len(theirs) :]
    assert all(kind == inspect.Parameter.KEYWORD_ONLY for _, _, kind in extras), extras


@pytest.mark.parametrize("name", LOSSES)
def test_function_signature_is_torchs(name):
    assert_torch_signature_then_keyword_extras(
        inspect.signature(getattr(F, name)).parameters.values(),
        inspect.signature(getattr(torch.nn.functional, name)).parameters.values(),
    )


@pytest.mark.parametrize("name", LOSSES.values())
def test_class_signature_is_torchs(name):
    torch_init = list(inspect.signature(getattr(torch.nn, name).__init__).parameters.values())[1:]  # self
    assert_torch_signature_then_keyword_extras(inspect.signature(getattr(nn, name)).parameters.values(), torch_init)


def test_every_torch_loss_is_here():
    torch_losses = {
        name
        for name, cls in vars(torch.nn.modules.loss).items()
        if isinstance(cls, type) and issubclass(cls, torch.nn.modules.loss._Loss) and not name.startswith("_")
    }
    deprecated_aliases = {"NLLLoss2d"}  # torch: "NLLLoss2d has been deprecated. Please use NLLLoss instead"
    assert torch_losses - deprecated_aliases <= set(LOSSES.values())
    assert all(isinstance(getattr(nn, name)(**CONSTRUCTOR_ARGS.get(name, {})), nn.Loss) for name in LOSSES.values())


rng = np.random.default_rng(0)
x, y = jnp.asarray(rng.standard_normal((4, 3))), jnp.asarray(rng.standard_normal((4, 3)))
p, q = jax.nn.sigmoid(x), jax.nn.sigmoid(y)
labels, weight = jnp.array([0, 2, 1, 2]), jnp.array([0.5, 1.0, 2.0])
signs = jnp.array([1.0, -1.0, 1.0, -1.0])
log_probs = jax.nn.log_softmax(jnp.asarray(rng.standard_normal((6, 2, 4))))
ctc_args = (log_probs, jnp.array([[1, 2], [3, 3]]), jnp.array([6, 5]), jnp.array([2, 2]))

linear_ce = nn.LinearCrossEntropyLoss(
    3,
    2,
    bias=True,
    weight=weight[:2],
    ignore_index=1,
    label_smoothing=0.1,
    options=nn.LinearCrossEntropyOptions(batch_chunk_size=3),
    key=jax.random.key(1),
)

# (class instance with non-default options, the function with the same options, the call's arguments)
EQUIVALENT = [
    (nn.L1Loss(reduction="sum"), lambda *a: F.l1_loss(*a, reduction="sum"), (x, y)),
    (nn.MSELoss("none"), lambda *a: F.mse_loss(*a, reduction="none"), (x, y)),
    (nn.SmoothL1Loss(beta=0.5), lambda *a: F.smooth_l1_loss(*a, beta=0.5), (x, y)),
    (nn.HuberLoss(delta=0.5), lambda *a: F.huber_loss(*a, delta=0.5), (x, y)),
    (
        nn.CrossEntropyLoss(weight, ignore_index=2, label_smoothing=0.1),
        lambda *a: F.cross_entropy(*a, weight=weight, ignore_index=2, label_smoothing=0.1),
        (x, labels),
    ),
    (nn.CrossEntropyLoss(axis=0), lambda *a: F.cross_entropy(*a, axis=0), (x, labels[:3])),
    (nn.NLLLoss(weight, reduction="sum"), lambda *a: F.nll_loss(*a, weight=weight, reduction="sum"), (x, labels)),
    (nn.BCELoss(weight), lambda *a: F.binary_cross_entropy(*a, weight=weight), (p, q)),
    (
        nn.BCEWithLogitsLoss(pos_weight=weight),
        lambda *a: F.binary_cross_entropy_with_logits(*a, pos_weight=weight),
        (x, q),
    ),
    (
        nn.KLDivLoss("batchmean", log_target=True),
        lambda *a: F.kl_div(*a, reduction="batchmean", log_target=True),
        (x, y),
    ),
    (nn.PoissonNLLLoss(False, True), lambda *a: F.poisson_nll_loss(*a, log_input=False, full=True), (p, 3 * q)),
    (nn.GaussianNLLLoss(full=True), lambda *a: F.gaussian_nll_loss(*a, full=True), (x, y, p)),
    (nn.SoftMarginLoss("sum"), lambda *a: F.soft_margin_loss(*a, reduction="sum"), (x, y)),
    (nn.MultiLabelSoftMarginLoss(weight), lambda *a: F.multilabel_soft_margin_loss(*a, weight=weight), (x, q)),
    (
        nn.MultiLabelMarginLoss("none"),
        lambda *a: F.multilabel_margin_loss(*a, reduction="none"),
        (x, jnp.array([[0, -1, 1]] * 4)),
    ),
    (
        nn.MultiMarginLoss(2, 0.5, weight),
        lambda *a: F.multi_margin_loss(*a, p=2, margin=0.5, weight=weight),
        (x, labels),
    ),
    (nn.MarginRankingLoss(0.2), lambda *a: F.margin_ranking_loss(*a, margin=0.2), (x[:, 0], y[:, 0], signs)),
    (nn.HingeEmbeddingLoss(0.5), lambda *a: F.hinge_embedding_loss(*a, margin=0.5), (x, jnp.sign(y))),
    (nn.CosineEmbeddingLoss(0.1), lambda *a: F.cosine_embedding_loss(*a, margin=0.1), (x, y, signs)),
    (
        nn.TripletMarginLoss(0.5, p=1.0, swap=True),
        lambda *a: F.triplet_margin_loss(*a, margin=0.5, p=1.0, swap=True),
        (x, y, p),
    ),
    (
        nn.TripletMarginWithDistanceLoss(distance_function=F.l1_loss, margin=0.5),
        lambda *a: F.triplet_margin_with_distance_loss(*a, distance_function=F.l1_loss, margin=0.5),
        (x, y, p),
    ),
    (nn.CTCLoss(blank=0, reduction="sum"), lambda *a: F.ctc_loss(*a, blank=0, reduction="sum"), ctc_args),
    (
        linear_ce,
        lambda *a: F.linear_cross_entropy(
            a[0],
            linear_ce.linear_weight,
            a[1],
            linear_bias=linear_ce.linear_bias,
            weight=weight[:2],
            ignore_index=1,
            label_smoothing=0.1,
            options=linear_ce.options,
        ),
        (x, labels // 2),
    ),
]


@pytest.mark.parametrize(
    "instance, function, args", EQUIVALENT, ids=lambda v: type(v).__name__ if isinstance(v, nn.Loss) else ""
)
def test_class_equals_function(instance, function, args):
    expected = function(*args)
    np.testing.assert_array_equal(instance(*args), expected)
    # Inside jit: closed over as a constant, and passed as an argument (a pytree with array leaves).
    np.testing.assert_allclose(jax.jit(lambda *a: instance(*a))(*args), expected, rtol=1e-6)
    np.testing.assert_allclose(jax.jit(lambda loss, *a: loss(*a))(instance, *args), expected, rtol=1e-6)


def test_array_options_are_pytree_leaves():
    loss = nn.BCEWithLogitsLoss(weight=weight, pos_weight=2 * weight)
    leaves = jax.tree_util.tree_leaves(loss)
    assert len(leaves) == 2 and all(isinstance(leaf, jax.Array) for leaf in leaves)
    doubled = jax.tree_util.tree_map(lambda a: 2 * a, loss)
    assert isinstance(doubled, nn.BCEWithLogitsLoss) and doubled.reduction == "mean"
    np.testing.assert_array_equal(doubled.pos_weight, 4 * weight)


def test_pytree_rebuilds_with_none_leaves_skip_the_constructor():
    """optax and flax rebuild pytrees with None (or placeholder) leaves: that must not re-run the constructor,
    whose initialisation of `LinearCrossEntropyLoss` would otherwise ask for a `key`."""
    loss = nn.LinearCrossEntropyLoss(4, 3, bias=True, key=jax.random.key(0), label_smoothing=0.1)
    same = jax.tree.map(lambda x: x, loss)
    assert same.label_smoothing == 0.1 and same.linear_weight is loss.linear_weight
    emptied = jax.tree.map(lambda x: None, loss)
    assert type(emptied) is nn.LinearCrossEntropyLoss and emptied.in_features == 4
    assert emptied.linear_weight is None and emptied.linear_bias is None
    treedef = jax.tree_util.tree_structure(loss)
    rebuilt = jax.tree_util.tree_unflatten(treedef, [None] * treedef.num_leaves)
    assert rebuilt.linear_weight is None
    with pytest.raises(ValueError, match="`linear_weight` is None"):
        rebuilt(jnp.ones((2, 4)), jnp.array([0, 2]))
    # Keyed paths name the fields, as for dataclasses.
    paths = [jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_leaves_with_path(loss)]
    assert paths == [".label_smoothing", ".linear_weight", ".linear_bias"]


def test_instances_compare_and_hash_by_value():
    assert nn.HuberLoss(delta=0.5) == nn.HuberLoss(delta=0.5) != nn.HuberLoss(delta=2.0)
    assert hash(nn.HuberLoss(delta=0.5)) == hash(nn.HuberLoss(delta=0.5))
    assert nn.L1Loss() != nn.MSELoss()
    # Array options: the same array makes equal instances; an equal array of another identity does not (an
    # array's value has no hash), nor does None.
    assert nn.BCELoss(weight=weight) == nn.BCELoss(weight=weight) != nn.BCELoss(weight=weight + 0)
    assert nn.BCELoss(weight=weight) != nn.BCELoss()

    # As static arguments of `jax.jit`, equal instances share one compilation (one trace).
    traces = []

    def apply(loss, x, y):
        traces.append(loss)
        return loss(x, y)

    static = jax.jit(apply, static_argnums=0)
    x, y = jnp.ones(3), jnp.zeros(3)
    for _ in range(3):
        static(nn.SmoothL1Loss(beta=0.5), x, y)  # a new, equal instance each time
    assert len(traces) == 1
    static(nn.SmoothL1Loss(beta=0.25), x, y)
    assert len(traces) == 2


def public_names(module) -> set[str]:
    """What `module` defines at top level or re-exports explicitly (``from x import y as y``, PEP 484's rule, which
    type checkers follow), minus the names that start with an underscore."""
    names = set()
    for node in ast.parse(inspect.getsource(module)).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(target.id for target in node.targets if isinstance(target, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update(alias.name for alias in node.names if alias.asname == alias.name)
    return {name for name in names if not name.startswith("_")}


def own_docstring(obj) -> str | None:
    """The docstring written in `obj`'s definition: not inherited, nor the one `dataclasses` generates."""
    (definition,) = ast.parse(textwrap.dedent(inspect.getsource(obj))).body
    return ast.get_docstring(definition)


PUBLIC_MODULES = [jaxloss, F, nn, jaxloss.testing, jaxloss.parity]


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda module: module.__name__)
def test_all_lists_exactly_the_public_names(module):
    assert len(set(module.__all__)) == len(module.__all__), module.__all__
    assert set(module.__all__) == public_names(module)


@pytest.mark.parametrize("module", [F, nn, jaxloss.testing, jaxloss.parity], ids=lambda module: module.__name__)
def test_every_public_name_has_a_docstring(module):
    functions_and_classes = [
        name
        for name in module.__all__
        if inspect.isfunction(getattr(module, name)) or inspect.isclass(getattr(module, name))
    ]
    assert [name for name in functions_and_classes if not own_docstring(getattr(module, name))] == []


def test_version():
    assert jaxloss.__version__


# ------------------------------------------------------------------------------------------------------------
# Arguments screened before the jitted call: what jax.jit would reject unnamed, or accept silently wrong.


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: F.cross_entropy(torch.zeros(2, 3), jnp.array([0, 1])), "cross_entropy: `input` is a torch.Tensor"),
        (lambda: F.mse_loss(x, torch.zeros(4, 3)), "mse_loss: `target` is a torch.Tensor"),
        (lambda: F.nll_loss(x, jnp.array([0, 1, 2, 0]), torch.ones(3)), "nll_loss: `weight` is a torch.Tensor"),
        (
            lambda: F.triplet_margin_loss(x, x, torch.nn.Parameter(torch.zeros(4, 3))),
            "triplet_margin_loss: `negative` is a torch.nn.parameter.Parameter",
        ),
    ],
)
def test_torch_tensors_are_refused_naming_the_loss_and_argument(call, message):
    with pytest.raises(TypeError, match=rf"^{message}; .*jnp\.asarray\(\w+\.detach\(\)\.cpu\(\)\.numpy\(\)\)"):
        call()


def test_python_lists_of_numbers_are_taken_as_arrays():
    np.testing.assert_array_equal(
        F.mse_loss(x, y, weight=[[1.0, 2.0, 3.0]] * 4), F.mse_loss(x, y, weight=jnp.array([[1.0, 2.0, 3.0]] * 4))
    )
    probabilities = jax.nn.sigmoid(y)
    np.testing.assert_array_equal(
        F.binary_cross_entropy_with_logits(x, probabilities, pos_weight=[1.0, 2.0, 3.0]),
        F.binary_cross_entropy_with_logits(x, probabilities, pos_weight=jnp.array([1.0, 2.0, 3.0])),
    )
    np.testing.assert_array_equal(F.cross_entropy(x, [0, 2, 1, 1]), F.cross_entropy(x, jnp.array([0, 2, 1, 1])))


def test_wide_numpy_integers_that_jax_would_wrap_are_refused():
    # 2**32 + 1 wraps to 1 in int32: without the check, a plausible loss of class 1.
    target = np.array([0, 2**32 + 1, 2])
    with pytest.raises(ValueError, match=r"^cross_entropy: `target` holds int64 values outside int32's range"):
        F.cross_entropy(x[:3], target)
    F.cross_entropy(x[:3], np.array([0, 1, 2]))  # int64 values that fit are fine
    with jax.enable_x64(True), pytest.raises(ValueError, match="must hold class indices in"):
        F.cross_entropy(x[:3], target)  # with 64-bit types, the class-index check sees the real value


@pytest.mark.parametrize(
    "transform, message",
    [
        (lambda: jax.jit(lambda p: F.multi_margin_loss(x, jnp.array([0, 1, 2, 0]), p=p))(1), "`p`"),
        (lambda: jax.vmap(lambda p: F.pairwise_distance(x, y, p=p))(jnp.array([1.0, 2.0])), "`p`"),
        (lambda: F.cross_entropy(x, jnp.array([0, 1, 2, 0]), ignore_index=jnp.array(-1)), "`ignore_index`"),
    ],
)
def test_static_options_refuse_arrays_naming_the_argument(transform, message):
    with pytest.raises(TypeError, match=rf"{message} must be a Python value, not an array: it is compiled as a static"):
        transform()
