"""The lessons' CIFAR-10 network, "Tudui", in PyTorch: the reference that `experiments.models.Tudui` mirrors."""

from torch import nn


class TorchTudui(nn.Module):
    """Three 5x5 conv + 2x2 max-pool blocks, then two linear layers (145,578 parameters).

    Exactly the lessons' module, so its `state_dict` keys (`model1.0.weight`, ...) are the ones a lesson's
    checkpoint has. Input: `(N, 3, 32, 32)` images; output: `(N, 10)` logits.
    """

    def __init__(self):
        super().__init__()
        self.model1 = nn.Sequential(
            nn.Conv2d(3, 32, 5, padding=2),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 5, padding=2),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, padding=2),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(1024, 64),
            nn.Linear(64, 10),
        )

    def forward(self, x):
        return self.model1(x)
