"""The code of docs/torch_to_jax.md runs as written and its assertions hold."""

import pathlib
import re

GUIDE = pathlib.Path(__file__).parents[1] / "docs" / "torch_to_jax.md"


def test_python_blocks_run_in_order():
    text = GUIDE.read_text()
    blocks = list(re.finditer(r"```python\n(.*?)```", text, re.DOTALL))
    assert blocks
    namespace = {"__name__": "torch_to_jax"}  # one namespace: later blocks use the names of earlier ones
    for block in blocks:
        first_line = text.count("\n", 0, block.start(1))
        # Padding with the lines before the block makes a traceback point at the guide's own line numbers.
        exec(compile("\n" * first_line + block.group(1), str(GUIDE), "exec"), namespace)


def test_torch_only_in_comments():
    """The guide's code runs without torch: the word appears in comments only (`torch_sgd` and the like aside)."""
    for block in re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.DOTALL):
        for line in block.splitlines():
            assert not re.search(r"\btorch\b", line.split("#")[0]), line
