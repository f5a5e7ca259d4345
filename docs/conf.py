"""Sphinx configuration of the jaxloss documentation.

Build it from the repository root with the `docs` extra installed (``pip install -e '.[docs]'``)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The API reference lists the public names by hand, grouped by family, and autosummary gives each one a page of
its own (``docs/api/_autosummary/``, generated at every build). `check_public_names_documented` makes the build
fail (under ``-W``) when a name of a public module's ``__all__`` has no page, or when a page documents a name
that is no longer public.
"""

import importlib
import pathlib
import sys
import typing
import warnings

import jax
from jax.typing import ArrayLike
from sphinx.deprecation import RemovedInSphinx10Warning
from sphinx.util import logging
from sphinx_autodoc_typehints import format_annotation

sys.path.insert(0, str(pathlib.Path(__file__).parents[1]))  # jaxloss from this checkout, installed or not

import jaxloss

project = "jaxloss"
author = "the jaxloss authors"
copyright = "the jaxloss authors"
release = version = jaxloss.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx_autodoc_typehints",  # after napoleon, whose Google sections it fills with the annotations
    "sphinx.ext.mathjax",
    "sphinx_copybutton",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
templates_path = ["_templates"]

# Markdown pages: `#`-anchors for headings down to ###, so that links such as [Data](training.md#data) resolve
# here as they do on GitHub.
myst_heading_anchors = 3

# Docstrings are Google style, as in optax; `name` in a docstring links to the object where one is documented.
default_role = "py:obj"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
autosummary_generate = True
autodoc_member_order = "bysource"
add_module_names = False
typehints_defaults = None  # the defaults stay in the signature
typehints_use_rtype = False  # the return type goes into "Returns:"
# sphinx-autodoc-typehints 3.6 (the newest for Python 3.11's Sphinx 9.0) calls an API that Sphinx 10 removes.
warnings.filterwarnings("ignore", "'sphinx_autodoc_typehints.*is deprecated", RemovedInSphinx10Warning)
# `typehints_formatter` is a function, which Sphinx cannot pickle with the environment: it re-reads instead.
suppress_warnings = ["config.cache"]

# Copying a doctest or a shell line copies the code without its prompt.
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True

html_theme = "sphinx_book_theme"
html_title = "jaxloss"
html_theme_options = {
    "show_toc_level": 2,
    "home_page_in_toc": True,
}

_ARRAY_LIKE = typing.get_args(ArrayLike)


def typehints_formatter(annotation, config=None):
    """Writes `jax.typing.ArrayLike` (a Union of eight types) and `jax.Array` as their users write them."""
    if annotation is jax.Array:
        return ":py:class:`jax.Array`"
    members = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Union and set(_ARRAY_LIKE) <= set(members):
        others = [format_annotation(member, config) for member in members if member not in _ARRAY_LIKE]
        return " | ".join([":py:data:`jax.typing.ArrayLike`", *others])
    return None


def resolve_package_relative(app, env, node, contnode):
    """Resolves the docstrings' `functional.l1_loss` and `nn.L1Loss` as `jaxloss.functional.l1_loss`, ...."""
    if node.get("refdomain") != "py" or not node["reftarget"].startswith(("functional.", "nn.")):
        return None
    domain = env.get_domain("py")
    target = f"jaxloss.{node['reftarget']}"
    if target not in domain.objects:
        return None
    return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], target, node, contnode)


def hide_object_base(app, name, obj, options, bases):
    """Shows "Bases:" only for a class with a base other than `object` (`jaxloss.nn.Loss`, for the losses)."""
    if bases == [object]:
        bases.clear()


# The modules whose `__all__` is the public API: each of their names must have a page in docs/api/.
PUBLIC_MODULES = ("jaxloss", "jaxloss.functional", "jaxloss.nn", "jaxloss.testing", "jaxloss.parity")

logger = logging.getLogger(__name__)


def check_public_names_documented(app, env):
    """Warns (an error under ``-W``) for each public name without a page and each page of a non-public name."""
    domain = env.get_domain("py")
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        if not hasattr(module, "__all__"):
            logger.warning(f"{module_name} has no __all__: the API reference cannot be checked against it")
            continue
        public = set(module.__all__)
        for name in sorted(public):
            if f"{module_name}.{name}" not in domain.objects:  # a function, a class or a submodule
                logger.warning(f"{module_name}.{name} is in {module_name}.__all__ but has no page in the API reference")
        for qualified in sorted(domain.objects):
            parent, _, name = qualified.rpartition(".")
            if parent == module_name and name not in public and qualified not in PUBLIC_MODULES:
                logger.warning(f"the API reference documents {qualified}, which is not in {module_name}.__all__")


def setup(app):
    app.connect("env-check-consistency", check_public_names_documented)
    app.connect("missing-reference", resolve_package_relative)
    app.connect("autodoc-process-bases", hide_object_base)
