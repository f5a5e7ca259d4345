"""The lessons' training setup: Tudui, `CrossEntropyLoss`, `torch.optim.SGD(lr=0.01)`, batch 64, 10 epochs.

Override single fields on the command line, e.g. ``--config.learning_rate=0.02 --config.num_epochs=3``.
"""

import ml_collections
from ml_collections import config_dict


def get_config() -> ml_collections.ConfigDict:
    """The default hyperparameters: the lessons' values, with torch.optim.SGD's defaults for the rest."""
    config = ml_collections.ConfigDict()

    # torch.optim.SGD(params, lr=0.01): momentum, dampening, weight decay and Nesterov at torch's defaults
    # (experiments.train_steps.torch_sgd maps them to optax with torch's semantics).
    config.learning_rate = 0.01
    config.momentum = 0.0
    config.dampening = 0.0
    config.weight_decay = 0.0
    config.nesterov = False

    # The global batch: split evenly over the devices (see num_devices), so it must divide by their number.
    config.batch_size = 64
    config.num_epochs = 10
    # Seeds the initial weights and every epoch's shuffle: the same seed gives the same numbers. An integer in
    # [0, 2**32 - 1], the seeds jax.random.key takes exactly (experiments.train.validate_config refuses others).
    config.seed = 0

    # 'auto' picks CIFAR-10 when it is available (torchvision's files in cifar10_dir or the JAXLOSS_CIFAR10_DIR
    # environment variable, or tensorflow-datasets' prepared copy) and otherwise scikit-learn's bundled digits;
    # 'cifar10' and 'digits' insist (see experiments.datasets.load_dataset).
    config.dataset = "auto"
    config.cifar10_dir = config_dict.placeholder(str)
    config.tfds_data_dir = config_dict.placeholder(str)  # None: tensorflow-datasets' default directory

    # Data parallelism (experiments.distributed): every batch split over `num_devices` devices (None: every device JAX
    # sees, of every process), parameters and optimizer state replicated. The same numbers as on one device, up
    # to the order of float sums.
    config.num_devices = config_dict.placeholder(int)
    # 'float32', or 'bfloat16' for mixed precision: Tudui computes in bfloat16, while its parameters, gradients,
    # optimizer state and loss stay float32.
    config.compute_dtype = "float32"
    # A run of several processes (hosts): jax.distributed.initialize before anything else. Fields left None are
    # found by JAX: the address from $JAX_COORDINATOR_ADDRESS, all three on SLURM, Open MPI, Kubernetes, TPU pods.
    config.distributed = ml_collections.ConfigDict(
        {
            "enabled": False,
            "coordinator_address": config_dict.placeholder(str),
            "num_processes": config_dict.placeholder(int),
            "process_id": config_dict.placeholder(int),
        }
    )

    # A checkpoint at the end of every epoch and every `checkpoint_every_steps` steps within one, so a run
    # killed mid-epoch repeats at most that many steps (200 steps of batch 64: about 15 s on a 2-core CPU).
    # Ctrl-C and SIGTERM checkpoint the step they stop at. Counts (batch, epochs, steps, checkpoints) are >= 1.
    config.checkpoint_every_steps = 200
    # The newest checkpoints kept: more let a run resume from an older one if the newest is damaged (--resume
    # passes over damaged ones; --resume_step picks one).
    config.max_checkpoints_to_keep = 3
    # The training loss goes to TensorBoard every this many steps (and every epoch's summary always).
    config.log_every_steps = 50
    return config
