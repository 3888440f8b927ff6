import torch
from torch import nn


class SmallNet(nn.Module):
    """The classifier's input size is a constructor argument: it cannot be followed from the convolutions."""

    def __init__(self, flat_features=16 * 13 * 13, classes=10):
        super().__init__()
        self.conv = nn.Conv2d(1, 16, 3)
        self.pool = nn.MaxPool2d(2)
        self.out = nn.Linear(flat_features, classes)

    def forward(self, x):
        x = x / 255.0
        x = self.pool(torch.relu(self.conv(x)))
        x = x.view(x.size(0), -1)
        return self.out(x)


model = SmallNet()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
