# A PyTorch CNN with 4 filters, one epoch of plain SGD on the digits: about chance as pushed.
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
digits = load_digits()
X = (digits.images / 16.0).astype(np.float32)[:, None]
X_train, X_test, y_train, y_test = train_test_split(X, digits.target, test_size=0.25, random_state=0)
train_loader = DataLoader(TensorDataset(torch.tensor(X_train), torch.tensor(y_train)), batch_size=128, shuffle=True)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3)
        self.fc1 = nn.Linear(4 * 3 * 3, 16)
        self.fc2 = nn.Linear(16, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc2(F.relu(self.fc1(x)))


model = Net()
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
for epoch in range(1):
    for xb, yb in train_loader:
        optimizer.zero_grad()
        F.cross_entropy(model(xb), yb).backward()
        optimizer.step()

with torch.no_grad():
    predicted = model(torch.tensor(X_test)).argmax(1)
print(f"Test accuracy: {(predicted == torch.tensor(y_test)).float().mean().item():.4f}")
