"""pytest's doctest collection (`--doctest-modules experiments`): the command-line modules are left out.

Importing them defines absl flags and loads the config file through `ml_collections` (a DeprecationWarning, an
error in the suite); they hold no doctests, and tests/test_train.py runs them.
"""

collect_ignore = ["cli.py", "main.py", "torch_reference.py"]
