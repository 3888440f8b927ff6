"""Glyph classifier, command-line style: argparse flags, loader kwargs, Adadelta with a step schedule."""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.optim.lr_scheduler import StepLR
from torchvision import datasets, transforms


class GlyphNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features_a = nn.Conv2d(1, 24, 3, 1)
        self.features_b = nn.Conv2d(24, 48, 3, 1)
        self.features_b2 = nn.Conv2d(48, 64, 3, padding=1)
        self.drop_features = nn.Dropout(0.3)
        self.drop_hidden = nn.Dropout(0.4)
        self.hidden = nn.Linear(9216, 96)
        self.head = nn.Linear(96, 10)

    def forward(self, x):
        x = F.relu(self.features_a(x))
        x = F.relu(self.features_b(x))
        x = F.max_pool2d(x, 2)
        x = self.drop_features(x)
        x = F.relu(self.features_b2(x))
        x = torch.flatten(x, 1)
        x = F.relu(self.hidden(x))
        x = self.drop_hidden(x)
        return F.log_softmax(self.head(x), dim=1)


def fit_one_epoch(net, loader, opt, epoch):
    net.train()
    for images, labels in loader:
        opt.zero_grad()
        loss = F.nll_loss(net(images), labels)
        loss.backward()
        opt.step()
    print(f"epoch {epoch} done, last batch loss {loss.item():.4f}")


def score(net, loader):
    net.eval()
    hits = 0
    with torch.no_grad():
        for images, labels in loader:
            hits += (net(images).argmax(dim=1) == labels).sum().item()
    share = hits / len(loader.dataset)
    print(f"held-out accuracy {share:.4f} ({hits} of {len(loader.dataset)})")


def cli():
    ap = argparse.ArgumentParser(description="train the glyph classifier")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--eval-batch-size", type=int, default=500)
    ap.add_argument("--epochs", type=int, default=14)
    ap.add_argument("--lr", type=float, default=1.0)
    ap.add_argument("--decay", type=float, default=0.7)
    return ap.parse_args()


def main():
    args = cli()
    train_kwargs = {"batch_size": args.batch_size, "shuffle": True}
    eval_kwargs = {"batch_size": args.eval_batch_size}
    prep = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.13,), (0.31,))])
    train_set = datasets.MNIST("data", train=True, download=True, transform=prep)
    eval_set = datasets.MNIST("data", train=False, transform=prep)
    train_loader = torch.utils.data.DataLoader(train_set, **train_kwargs)
    eval_loader = torch.utils.data.DataLoader(eval_set, **eval_kwargs)

    net = GlyphNet()
    opt = optim.Adadelta(net.parameters(), lr=args.lr)
    schedule = StepLR(opt, step_size=1, gamma=args.decay)
    for epoch in range(1, args.epochs + 1):
        fit_one_epoch(net, train_loader, opt, epoch)
        score(net, eval_loader)
        schedule.step()


if __name__ == "__main__":
    main()
