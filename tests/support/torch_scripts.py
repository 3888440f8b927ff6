"""PyTorch scripts in the styles people push, on MNIST-shaped data (28x28) made from scikit-learn's digits,
and the PyTorch environment the local runtime builds for them (torch, torchvision, Lightning, torchmetrics).

Each script trains for a few seconds on a quiet machine; a short sleep per batch keeps an epoch long enough
for a test to kill it in the middle."""

from __future__ import annotations

import sys
from pathlib import Path

from mlops import envs
from mlops.config import load_settings
from mlops.envs.local import LocalBuilder
from tests.support.envs import machine_env

DIGITS_28 = """\
import time
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

digits = load_digits()
images = np.kron(digits.images.astype(np.float32) / 16.0, np.ones((1, 4, 4), dtype=np.float32))
X = images[:, None, 2:30, 2:30]  # MNIST-shaped: 1x28x28
X_train, X_test, y_train, y_test = train_test_split(X, digits.target, test_size=0.25, random_state=0)
"""

# The tutorial's loop: an nn.Module CNN, for epoch in range(...), the test accuracy printed at the end.
PLAIN_CNN = (
    DIGITS_28
    + """\
import torch.nn as nn
import torch.nn.functional as F
try:
    from keras.utils import np_utils  # left over from a Keras version of this script
except ImportError:
    np_utils = None

train_loader = DataLoader(TensorDataset(torch.tensor(X_train), torch.tensor(y_train)), batch_size=64, shuffle=True)
test_loader = DataLoader(TensorDataset(torch.tensor(X_test), torch.tensor(y_test)), batch_size=256)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3)
        self.fc1 = nn.Linear(8 * 13 * 13, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        return self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))


model = Net()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
criterion = nn.CrossEntropyLoss()
for epoch in range(EPOCHS):
    model.train()
    for images, labels in train_loader:
        optimizer.zero_grad()
        loss = criterion(model(images), labels)
        loss.backward()
        optimizer.step()
        time.sleep(0.02)
    scheduler.step()
    print(f"Epoch [{epoch + 1}/EPOCHS], Loss: {loss.item():.4f}")

model.eval()
correct = total = 0
with torch.no_grad():
    for images, labels in test_loader:
        total += labels.size(0)
        correct += (model(images).argmax(1) == labels).sum().item()
print(f"Test Accuracy of the model on the {total} test images: {100 * correct / total:.2f} %")
"""
)

# torchmetrics: a validation accuracy each epoch (a Metric), a training one (not the metric), the test one at the
# end (the functional accuracy).
TORCHMETRICS = (
    DIGITS_28
    + """\
import torch.nn as nn
import torchmetrics

X_train, X_val, y_train, y_val = train_test_split(X_train, y_train, test_size=0.2, random_state=0)
def loader(x, y, shuffle=False):
    return DataLoader(TensorDataset(torch.tensor(x), torch.tensor(y)), batch_size=32, shuffle=shuffle)

model = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
loss_fn = nn.CrossEntropyLoss()
train_acc = torchmetrics.Accuracy(task="multiclass", num_classes=10)

def evaluate(data):
    metric = torchmetrics.Accuracy(task="multiclass", num_classes=10)
    model.eval()
    with torch.no_grad():
        for x, y in data:
            metric.update(model(x), y)
    return metric.compute()

for epoch in range(1, EPOCHS + 1):
    model.train()
    for x, y in loader(X_train, y_train, True):
        optimizer.zero_grad()
        out = model(x)
        loss = loss_fn(out, y)
        loss.backward()
        optimizer.step()
        train_acc(out, y)
        time.sleep(0.005)
    print(f"epoch {epoch}: train acc {train_acc.compute():.3f}, val acc {evaluate(loader(X_val, y_val)):.3f}")
    train_acc.reset()

model.eval()
with torch.no_grad():
    predicted = model(torch.tensor(X_test)).argmax(1)
test_accuracy = torchmetrics.functional.accuracy(predicted, torch.tensor(y_test), task="multiclass", num_classes=10)
print("done")
"""
)

LIGHTNING = (
    DIGITS_28
    + """\
import torch.nn as nn
import torch.nn.functional as F
import lightning as L
import torchmetrics

X_train, X_val, y_train, y_val = train_test_split(X_train, y_train, test_size=0.2, random_state=0)
def loader(x, y, shuffle=False):
    return DataLoader(TensorDataset(torch.tensor(x), torch.tensor(y)), batch_size=64, shuffle=shuffle)


class Digits(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                                 nn.Linear(8 * 13 * 13, 10))
        self.val_acc = torchmetrics.Accuracy(task="multiclass", num_classes=10)
        self.test_acc = torchmetrics.Accuracy(task="multiclass", num_classes=10)

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        time.sleep(0.03)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.val_acc(self(x).argmax(1), y)
        self.log("val_acc", self.val_acc, on_epoch=True)

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.test_acc(self(x).argmax(1), y)
        self.log("test_acc", self.test_acc, on_epoch=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=2e-3)


model = Digits()
trainer = L.Trainer(max_epochs=EPOCHS, logger=False, enable_checkpointing=False, enable_progress_bar=False)
trainer.fit(model, loader(X_train, y_train, True), loader(X_val, y_val))
trainer.test(model, loader(X_test, y_test))
"""
)

# Trains and never evaluates: nothing to measure.
NO_EVALUATION = (
    DIGITS_28
    + """\
import torch.nn as nn
model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for epoch in range(2):
    for x, y in DataLoader(TensorDataset(torch.tensor(X_train), torch.tensor(y_train)), batch_size=64):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
torch.save(model.state_dict(), "model.pt")
"""
)


def script(text: str, epochs: int) -> str:
    return text.replace("EPOCHS", str(epochs))


def torch_python(folder: Path) -> str:
    """The interpreter of the environment mlops's local runtime gives a script that imports torch, Lightning
    and torchmetrics: the PyTorch generation's venv, built once per machine (its store is the machine's
    cache, as for a run), with Lightning and torchmetrics over it in ``folder``."""
    code = folder / "code"
    code.mkdir(parents=True, exist_ok=True)
    (code / "train.py").write_text("import torch\nimport lightning\nimport torchmetrics\n")
    settings = load_settings(env=machine_env())
    assert settings.machine_cache is not None
    store, uv = envs.Store(folder / "envs"), envs.Uv.from_env()
    bases = envs.Store(settings.machine_cache / "envs")
    builder = LocalBuilder(sys.executable, store, uv, bases=bases)
    env = envs.resolve(envs.Request(code, "train.py", "mlops-pytorch", False), builder, store, uv)
    return env.python
