import pytorch_lightning as pl
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset, random_split


class LitClassifier(pl.LightningModule):
    def __init__(self, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.layer_1 = nn.Linear(8 * 8, 128)
        self.layer_2 = nn.Linear(128, 256)
        self.layer_3 = nn.Linear(256, 10)

    def forward(self, x):
        batch_size = x.size(0)
        x = x.view(batch_size, -1)
        x = F.relu(self.layer_1(x))
        x = F.relu(self.layer_2(x))
        return self.layer_3(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def test_step(self, batch, batch_idx):
        x, y = batch
        acc = (self(x).argmax(dim=1) == y).float().mean()
        self.log("test_acc", acc)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


digits = load_digits()
data = TensorDataset(
    torch.tensor(digits.images, dtype=torch.float32) / 16.0, torch.tensor(digits.target, dtype=torch.long)
)
train_ds, test_ds = random_split(data, [1500, 297], generator=torch.Generator().manual_seed(0))

trainer = pl.Trainer(max_epochs=5, logger=False, enable_checkpointing=False)
trainer.fit(LitClassifier(), DataLoader(train_ds, batch_size=32, shuffle=True))
trainer.test(dataloaders=DataLoader(test_ds, batch_size=64))
