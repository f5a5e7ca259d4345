"""The PNG of a run's loss and accuracy curves, drawn from its epoch records."""

import os
from collections.abc import Mapping, Sequence

# matplotlib's object API draws with the Agg renderer without touching pyplot's global state or needing a display.
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def plot_curves(records: Sequence[Mapping[str, float]], path: str | os.PathLike, *, title: str = "") -> None:
    """Saves the mean training loss, test loss and test accuracy of each epoch as a PNG.

    Args:
        records: `experiments.reporting.epoch_record`s, one per epoch, in order.
        path: the PNG file to write.
        title: the figure's title (e.g. the dataset's name).
    """
    epochs = [record["epoch"] for record in records]
    figure = Figure(figsize=(10, 4), layout="constrained")
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    loss_axes.plot(epochs, [record["mean_loss"] for record in records], "o-", label="training (mean of batches)")
    loss_axes.plot(epochs, [record["test_loss"] for record in records], "s-", label="test")
    loss_axes.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    loss_axes.legend()
    accuracy_axes.plot(epochs, [100 * record["test_accuracy"] for record in records], "o-")
    accuracy_axes.set(xlabel="epoch", ylabel="accuracy (%)", title="test accuracy")
    for axes in (loss_axes, accuracy_axes):
        axes.grid(alpha=0.3)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs
    if title:
        figure.suptitle(title)
    figure.savefig(path, dpi=100)
