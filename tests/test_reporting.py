"""`metrics.jsonl` (`experiments.reporting`): strict JSON with non-finite numbers, damaged lines set aside on
reopening with every good record kept, and a rewrite that an interruption cannot lose records in."""

import json
import logging
import math
import os

import pytest

from experiments import reporting


def record(step: int, **values) -> dict:
    return {"epoch": step // 6, "step": step, "summed_loss": 13.5, "test_loss": 2.25, **values}


def line(step: int) -> bytes:
    return json.dumps(record(step)).encode() + b"\n"


def strict_json(text: str):
    """`json.loads`, refusing the bare NaN and Infinity tokens that are not JSON."""

    def refuse(token):
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_numbers_are_written_as_strict_json_and_read_back(tmp_path):
    metrics_file = reporting.MetricsFile(tmp_path)
    metrics_file.append(record(6, summed_loss=math.nan, test_loss=math.inf, images_per_second=-math.inf))
    metrics_file.append(record(12))
    metrics_file.close()

    lines = (tmp_path / reporting.METRICS_FILE).read_text().splitlines()
    assert strict_json(lines[0])["summed_loss"] == "NaN"
    assert strict_json(lines[0])["test_loss"] == "Infinity"
    assert strict_json(lines[0])["images_per_second"] == "-Infinity"
    assert strict_json(lines[1]) == record(12)

    first, second = reporting.read_metrics(tmp_path)
    assert math.isnan(first["summed_loss"])
    assert (first["test_loss"], first["images_per_second"]) == (math.inf, -math.inf)
    assert second == record(12)
    # Reopened on resume, the records are rewritten as they were.
    reporting.MetricsFile(tmp_path, start_step=12).close()
    assert (tmp_path / reporting.METRICS_FILE).read_text().splitlines() == lines


def test_bare_non_finite_tokens_of_older_files_are_read():
    assert reporting.decode_record(b'{"step": 6, "test_loss": NaN, "mean_loss": -Infinity}')["mean_loss"] == -math.inf


def test_a_non_finite_number_that_cannot_be_written_as_a_string_raises():
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        reporting.encode_record({"step": 6, "losses": [math.nan]})


DAMAGE = {
    "torn last line": (line(6) + line(12) + b'{"epoch": 3, "step": 18, "summ', [3]),
    "bad byte": (line(6) + b'{"step": 9, "loss": "\xff"}\n' + line(12) + line(18), [2]),
    "blank line": (line(6) + b"\n" + line(12) + line(18), [2]),
    "not an object": (line(6) + b"[1, 2]\n" + line(12) + b'"step"\n' + line(18), [2, 4]),
    "no step": (line(6) + b'{"epoch": 2}\n' + line(12) + b'{"step": "12"}\n' + line(18), [2, 4]),
    "torn line in the middle": (line(6) + b'{"epoch": 2, "st' + b"\n" + line(12) + line(18) + b"\0\0\0", [2, 5]),
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_damaged_lines_are_set_aside_and_every_good_record_kept(damage, tmp_path, caplog):
    content, damaged_numbers = DAMAGE[damage]
    path = tmp_path / reporting.METRICS_FILE
    path.write_bytes(content)
    good_steps = [6, 12] if damage == "torn last line" else [6, 12, 18]

    with caplog.at_level(logging.WARNING):
        assert [r["step"] for r in reporting.read_metrics(tmp_path)] == good_steps
    assert f"skipped {len(damaged_numbers)} damaged line(s)" in caplog.text
    assert path.read_bytes() == content  # reading changes nothing

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        metrics_file = reporting.MetricsFile(tmp_path, start_step=18)
    metrics_file.append(record(24))
    metrics_file.close()
    assert [r["step"] for r in reporting.read_metrics(tmp_path)] == [*good_steps, 24]
    assert path.read_bytes() == b"".join(line(step) for step in [*good_steps, 24])

    set_aside = tmp_path / "metrics.jsonl.damaged"
    assert f"{len(damaged_numbers)} damaged line(s)" in caplog.text and str(set_aside) in caplog.text
    header, *entries = set_aside.read_bytes().splitlines()
    assert header.startswith(b"# ") and b"damaged lines of metrics.jsonl" in header
    lines = content.split(b"\n")
    assert entries == [f"line {number}: ".encode() + lines[number - 1] for number in damaged_numbers]


def test_damaged_lines_of_each_reopening_are_appended(tmp_path):
    path = tmp_path / reporting.METRICS_FILE
    path.write_bytes(line(6) + b"torn")
    reporting.MetricsFile(tmp_path, start_step=6).close()
    with open(path, "ab") as file:
        file.write(b"\n" + line(12))
    reporting.MetricsFile(tmp_path, start_step=12).close()
    assert [r["step"] for r in reporting.read_metrics(tmp_path)] == [6, 12]
    first_header, first, second_header, second = (tmp_path / "metrics.jsonl.damaged").read_bytes().splitlines()
    assert (first, second) == (b"line 2: torn", b"line 2: ")
    assert first_header.startswith(b"# ") and second_header.startswith(b"# ")


def test_records_after_the_resumed_step_are_dropped(tmp_path):
    (tmp_path / reporting.METRICS_FILE).write_bytes(line(6) + line(12) + line(18))
    reporting.MetricsFile(tmp_path, start_step=12).close()
    assert [r["step"] for r in reporting.read_metrics(tmp_path)] == [6, 12]


def test_an_interrupted_rewrite_loses_no_record(tmp_path, monkeypatch):
    # Killed before the new file replaces the old one: the old one is whole, and its damaged lines are already
    # set aside; the next reopening starts over from it.
    path = tmp_path / reporting.METRICS_FILE
    content = line(6) + b"\xff\n" + line(12) + line(18)
    path.write_bytes(content)

    def killed(*args):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", killed)
        with pytest.raises(KeyboardInterrupt):
            reporting.MetricsFile(tmp_path, start_step=12)
    assert path.read_bytes() == content
    assert (tmp_path / "metrics.jsonl.damaged").read_bytes().splitlines()[1:] == [b"line 2: \xff"]

    reporting.MetricsFile(tmp_path, start_step=12).close()
    assert path.read_bytes() == line(6) + line(12)
    assert not (tmp_path / "metrics.jsonl.tmp").exists()
