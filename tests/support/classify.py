"""The classifier's test data: the labelled corpus, and small repositories written on the fly."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "classify"
LABELS: dict[str, dict[str, str]] = json.loads((CORPUS / "labels.json").read_text())


def src(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(src(text))
    return root


TRAIN_NET = """
    import torch
    from model import Net

    net = Net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for x, y in data:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
    """
MODEL = """
    import torch.nn as nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 8, 3)
            self.fc = nn.Linear(8, 10)
    """


def notebook(*cells: str) -> str:
    return json.dumps(
        {
            "cells": [
                {"cell_type": "code", "source": c.splitlines(keepends=True), "metadata": {}, "outputs": []}
                for c in cells
            ]
            + [{"cell_type": "markdown", "source": ["Conv2D is mentioned here"], "metadata": {}}],
            "nbformat": 4,
            "nbformat_minor": 5,
            "metadata": {},
        }
    )
