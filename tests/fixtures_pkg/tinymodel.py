"""A user model reachable as ``fixtures_pkg.tinymodel:make`` (tests put ``tests/`` on sys.path)."""

import torch
from torch import nn


def make() -> nn.Module:
    torch.manual_seed(1)
    return _Tiny()


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.fc(x))
