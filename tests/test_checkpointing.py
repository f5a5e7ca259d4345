"""Checkpoints that cannot be resumed (`experiments.checkpointing`, `experiments.train`): a damaged one is named by
its step and passed over for the newest intact one, `resume_step` picks one, a checkpoint holding NaNs is refused
by name, and the checkpoints a resumed run writes again are set aside, never deleted."""

import os
import pathlib
import re
import shutil
import time

import jax
import jax.numpy as jnp
import pytest
from test_train import assert_trees_equal, small_config, synthetic_dataset, without_timing

from experiments import checkpointing, plotting, reporting, train
from experiments.errors import RunError


def truncate_array_data(step_dir: pathlib.Path) -> None:
    # The arrays' bytes (OCDBT data files), each cut to half its length.
    for file in (step_dir / "state").rglob("d/*"):
        os.truncate(file, file.stat().st_size // 2)


def remove_manifest(step_dir: pathlib.Path) -> None:
    (step_dir / "state" / "manifest.ocdbt").unlink()


def remove_metadata(step_dir: pathlib.Path) -> None:
    (step_dir / "state" / "_METADATA").unlink()


def garble_metadata(step_dir: pathlib.Path) -> None:
    (step_dir / "state" / "_METADATA").write_bytes(b"\x00\x13garbage{")


def garble_progress(step_dir: pathlib.Path) -> None:
    (step_dir / "progress" / "metadata").write_text('{"step": 18, "epoch"')


def remove_state(step_dir: pathlib.Path) -> None:
    shutil.rmtree(step_dir / "state")


def empty_the_folder(step_dir: pathlib.Path) -> None:
    shutil.rmtree(step_dir)
    step_dir.mkdir()


# Each of these made orbax 0.12 raise from deep inside its restore (20 to 150 lines of traceback).
DAMAGES = [
    truncate_array_data,
    remove_manifest,
    remove_metadata,
    garble_metadata,
    garble_progress,
    remove_state,
    empty_the_folder,
]


@pytest.fixture(scope="module", autouse=True)
def no_plots():
    # The plot takes most of a short resumed run's time and is checked in test_train.py.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(plotting, "plot_curves", lambda *args, **kwargs: None)
        yield


@pytest.fixture(scope="module")
def dataset():
    return synthetic_dataset()


@pytest.fixture(scope="module")
def finished(tmp_path_factory, dataset):
    """A finished 3-epoch run (18 steps) and its workdir, which keeps the checkpoints of steps 12, 16 and 18."""
    workdir = tmp_path_factory.mktemp("finished")
    result = train.train_and_evaluate(small_config(), workdir, dataset=dataset)
    assert checkpointing.checkpoint_steps(workdir) == [12, 16, 18]
    return workdir, result


@pytest.fixture
def copy_of_run(finished, tmp_path):
    """A copy of the finished run's workdir, to damage."""
    workdir = tmp_path / "run"
    shutil.copytree(finished[0], workdir)
    return workdir


def like(result):
    return {"params": result.params, "opt_state": result.opt_state}


@pytest.mark.parametrize("max_to_keep", [0, -1])
def test_keeping_no_checkpoint_is_refused(tmp_path, max_to_keep):
    with pytest.raises(ValueError, match=rf"`max_to_keep` must be an integer >= 1; got {max_to_keep}"):
        checkpointing.Checkpointer(tmp_path, max_to_keep=max_to_keep)
    with pytest.raises(train.ConfigError, match=rf"config.max_checkpoints_to_keep must be .*; got {max_to_keep}$"):
        train.train_and_evaluate(small_config(max_checkpoints_to_keep=max_to_keep), tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_checkpoint_is_named_by_its_step(finished, copy_of_run, damage, capfd):
    damage(copy_of_run / checkpointing.CHECKPOINT_DIR / "18")
    checkpointer = checkpointing.Checkpointer(copy_of_run, max_to_keep=3)
    with pytest.raises(checkpointing.CheckpointError, match=r"the checkpoint of step 18 \(.*18\) is damaged"):
        checkpointer.restore(18, like(finished[1]))
    state, progress = checkpointer.restore(16, like(finished[1]))  # the others are intact
    assert progress["step"] == 16
    time.sleep(0.1)  # tensorstore's callbacks that outlive a failed read run now
    checkpointer.close()
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("damage", DAMAGES)
def test_resume_passes_over_a_damaged_newest_checkpoint(finished, copy_of_run, dataset, damage, capfd):
    _, expected = finished
    damage(copy_of_run / checkpointing.CHECKPOINT_DIR / "18")
    resumed = train.train_and_evaluate(small_config(), copy_of_run, resume=True, dataset=dataset)

    out, err = capfd.readouterr()
    assert "Traceback" not in err
    assert re.search(r"Passing over a damaged checkpoint: the checkpoint of step 18 \(.*\) is damaged", out), out
    assert "Resuming from the checkpoint of step 16 (epoch 3, batch 4)" in out
    # The damaged checkpoint is kept aside, and the run wrote step 18 again: the uninterrupted run's result.
    assert (copy_of_run / checkpointing.SET_ASIDE_DIR / "18").is_dir()
    assert checkpointing.checkpoint_steps(copy_of_run) == [12, 16, 18]
    assert resumed.step == 18
    assert_trees_equal(resumed.params, expected.params)
    assert without_timing(reporting.read_metrics(copy_of_run)) == without_timing(expected.records)


def test_resume_step_picks_an_older_checkpoint_and_sets_the_newer_ones_aside(finished, copy_of_run, dataset, capsys):
    _, expected = finished
    resumed = train.train_and_evaluate(small_config(), copy_of_run, resume_step=12, dataset=dataset)

    out = capsys.readouterr().out
    assert "Resuming from the checkpoint of step 12 (epoch 3, batch 0)" in out
    assert "Set aside the checkpoints of steps [16, 18]" in out
    assert sorted(path.name for path in (copy_of_run / checkpointing.SET_ASIDE_DIR).iterdir()) == ["16", "18"]
    assert resumed.step == 18
    assert_trees_equal(resumed.params, expected.params)
    assert without_timing(reporting.read_metrics(copy_of_run)) == without_timing(expected.records)


def test_resume_step_must_name_a_checkpoint_that_can_be_read(copy_of_run, dataset):
    before = (copy_of_run / reporting.METRICS_FILE).read_text()
    with pytest.raises(
        checkpointing.CheckpointError, match=r"no checkpoint of that step \(it holds steps \[12, 16, 18\]\)"
    ):
        train.train_and_evaluate(small_config(), copy_of_run, resume_step=13, dataset=dataset)
    # A damaged checkpoint asked for by its step is not passed over for another.
    remove_state(copy_of_run / checkpointing.CHECKPOINT_DIR / "12")
    with pytest.raises(checkpointing.CheckpointError, match=r"the checkpoint of step 12 \(.*\) is damaged"):
        train.train_and_evaluate(small_config(), copy_of_run, resume_step=12, dataset=dataset)
    assert (copy_of_run / reporting.METRICS_FILE).read_text() == before
    assert checkpointing.checkpoint_steps(copy_of_run) == [12, 16, 18]


def test_resume_with_every_checkpoint_damaged_is_refused(copy_of_run, dataset):
    for step in (12, 16, 18):
        remove_state(copy_of_run / checkpointing.CHECKPOINT_DIR / str(step))
    before = (copy_of_run / reporting.METRICS_FILE).read_text()
    with pytest.raises(
        checkpointing.CheckpointError, match=r"none of its checkpoints can be read \(steps \[18, 16, 12\]"
    ):
        train.train_and_evaluate(small_config(), copy_of_run, resume=True, dataset=dataset)
    assert (copy_of_run / reporting.METRICS_FILE).read_text() == before


def test_a_checkpoint_of_non_finite_parameters_is_refused_by_its_step(finished, copy_of_run, dataset):
    # Checkpoint 18 rewritten with a NaN among its parameters (as bit rot might leave it).
    checkpointer = checkpointing.Checkpointer(copy_of_run, max_to_keep=3)
    state, progress = checkpointer.restore(18, like(finished[1]))
    checkpointer.close()
    leaves, structure = jax.tree.flatten(state["params"])
    leaves[0] = leaves[0].at[(0,) * leaves[0].ndim].set(jnp.nan)
    state["params"] = jax.tree.unflatten(structure, leaves)
    shutil.rmtree(copy_of_run / checkpointing.CHECKPOINT_DIR / "18")
    checkpointer = checkpointing.Checkpointer(copy_of_run, max_to_keep=3)
    checkpointer.save(18, state, progress)
    checkpointer.close()

    # A fourth epoch would start from it: refused by the checkpoint's step, not blamed on the learning rate.
    with pytest.raises(
        checkpointing.CheckpointError, match=r"the checkpoint of step 18 \(.*\) holds parameters .* not finite"
    ) as refused:
        train.train_and_evaluate(small_config(num_epochs=4), copy_of_run, resume=True, dataset=dataset)
    assert "steps [12, 16] before it" in str(refused.value)
    assert isinstance(refused.value, RunError)
    assert len(reporting.read_metrics(copy_of_run)) == 3
