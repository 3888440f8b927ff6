import pytorch_lightning as pl
import torch
from torch import nn, optim
from torch.utils.data import DataLoader, TensorDataset


class LitMNIST(pl.LightningModule):
    def __init__(self, hidden=64, lr=0.01, batch_size=32):
        super().__init__()
        self.model = nn.Sequential(
            nn.Flatten(),
            nn.Linear(28 * 28, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 32),
            nn.ReLU(),
            nn.Linear(32, 10),
        )
        self.lr = lr
        self.batch_size = batch_size

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.model(x), y)

    def configure_optimizers(self):
        return optim.SGD(self.parameters(), lr=self.lr)

    def train_dataloader(self):
        images = torch.load("/data/mnist_train.pt")
        return DataLoader(TensorDataset(*images), batch_size=self.batch_size, shuffle=True)


trainer = pl.Trainer(limit_train_batches=100)
trainer.fit(LitMNIST())
