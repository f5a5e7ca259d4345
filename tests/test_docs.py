"""The code of README.md and of every docs/ page runs as written, and its assertions hold.

Each page's ```python blocks run in order in one namespace (later blocks use the names of earlier ones), with
the repository root on `sys.path` (pytest's `pythonpath`), so `experiments` imports as in a checkout. A block
that is not meant to run says what it is instead: ```bash, ```text, ...
"""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(.*)$", re.MULTILINE)


def code_blocks(page: pathlib.Path) -> list[tuple[str, int, str]]:
    """The fenced blocks of `page`: (info string, line number of the first code line minus one, code)."""
    text = page.read_text()
    fences = list(FENCE.finditer(text))
    assert len(fences) % 2 == 0, f"{page.name}: a code fence is not closed"
    blocks = []
    for opening, closing in zip(fences[::2], fences[1::2], strict=True):
        assert closing.group(1) == "", f"{page.name}, line {text.count(chr(10), 0, closing.start()) + 1}: a fence"
        start = opening.end() + 1
        blocks.append((opening.group(1).strip(), text.count("\n", 0, start), text[start : closing.start()]))
    return blocks


def python_blocks(page: pathlib.Path) -> list[tuple[int, str]]:
    return [(first_line, code) for info, first_line, code in code_blocks(page) if info == "python"]


def page_id(page: pathlib.Path) -> str:
    return str(page.relative_to(ROOT))


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_python_blocks_run_in_order(page):
    namespace = {"__name__": page.stem}
    for first_line, code in python_blocks(page):
        # Padding with the lines before the block makes a traceback point at the page's own line numbers.
        exec(compile("\n" * first_line + code, str(page), "exec"), namespace)


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_block_says_what_it_is(page):
    """A block runs only as ```python: an unlabelled or ```py block would be shown as code and never run."""
    for info, first_line, _ in code_blocks(page):
        assert info, f"{page.name}, line {first_line}: a code block without an info string (python, bash, text)"
        assert info == "python" or info.split()[0] not in {"py", "python3", "pycon", "ipython"}, (
            f"{page.name}, line {first_line}: ```{info} does not run; write ```python"
        )


# The pages about comparing with torch, whose code needs torch (the `test` extra).
PAGES_WITH_TORCH = {ROOT / "docs" / "parity.md"}


@pytest.mark.parametrize("page", [page for page in PAGES if page not in PAGES_WITH_TORCH], ids=page_id)
def test_torch_only_in_comments(page):
    """The pages' code runs without torch: the word appears in comments only (`torch_sgd` and the like aside)."""
    for first_line, code in python_blocks(page):
        for number, line in enumerate(code.splitlines(), start=first_line + 1):
            assert not re.search(r"\btorch\b", line.split("#")[0]), f"{page.name}, line {number}: {line}"


def test_pages_with_code_are_found():
    """The pages whose examples must run have some (a fence the parser misses would make them pass vacuously)."""
    for name in (
        "README.md",
        "docs/index.md",
        "docs/losses.md",
        "docs/parity.md",
        "docs/torch_to_jax.md",
        "docs/training.md",
    ):
        assert python_blocks(ROOT / name), name


def test_readme_has_exactly_the_two_setup_commands():
    """The README's set-up commands; `.ci/run` runs the line after ``# run the tests``."""
    commands = re.findall(r"```bash\n# (run the \w+)\n", (ROOT / "README.md").read_text())
    assert commands == ["run the training", "run the tests"]
