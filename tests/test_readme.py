"""The README's code runs as written."""

import pathlib
import re

README = (pathlib.Path(__file__).parents[1] / "README.md").read_text()


def test_python_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", README, re.DOTALL)
    assert blocks
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def test_exactly_two_setup_commands():
    commands = re.findall(r"```bash\n# (run the \w+)\n", README)
    assert commands == ["run the training", "run the tests"]
