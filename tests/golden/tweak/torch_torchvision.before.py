"""A torchvision network trained from scratch: no layer of its own is written in the code."""

import torch
import torchvision
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

train_set = datasets.CIFAR10("data", train=True, download=True, transform=transforms.ToTensor())
train_loader = DataLoader(train_set, batch_size=128, shuffle=True)

model = torchvision.models.resnet18(num_classes=10)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
criterion = torch.nn.CrossEntropyLoss()

for epoch in range(30):
    for images, labels in train_loader:
        optimizer.zero_grad()
        criterion(model(images), labels).backward()
        optimizer.step()
