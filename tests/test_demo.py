"""The main job's demo runs and prints the seed lessons' numbers."""

import pathlib
import runpy


def test_demo_prints_the_lessons_numbers(capsys):
    runpy.run_path(str(pathlib.Path(__file__).parents[1] / "experiments" / "demo.py"), run_name="__main__")
    printed = capsys.readouterr().out
    for expected in ["loss = 0.6667", "loss = 2.0000", "loss = 1.0000", "loss = 0.6250", "loss = 1.5000",
                     "loss = 1.1019", "[[ 0.3006, -0.6678, 0.3672]]"]:
        assert expected in printed
