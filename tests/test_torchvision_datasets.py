"""torchvision's data sets offline (issue 25, item 7): MNIST, FashionMNIST and CIFAR10 made by the script with
``download=True`` under a relative, an absolute and a ``~`` root read the files imported into the machine's
store (written here from scikit-learn's digits, never downloaded), CIFAR's with md5s torchvision does not
know; and a download that fails names the exact ``mlops datasets import`` line."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from jobs.cli import main
from mlops_harness.protocol import ENV_DATASETS, OUTCOME_FILE
from tests.support.processes import run_harness
from tests.support.torch_scripts import torch_python

pytestmark = pytest.mark.slow
DEAD_PROXY = "http://127.0.0.1:9"  # any download attempt fails at once: nothing is fetched
TRAIN = 1200
MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def idx(path: Path, array: np.ndarray) -> Path:
    """``array`` (uint8) in the IDX format MNIST's files use: magic (0, 0, 0x08 for ubyte, dims), sizes."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())
    return path


def digits_as_idx(folder: Path) -> list[Path]:
    digits = load_digits()
    images = (digits.images * 255 / 16).astype(np.uint8)
    folder.mkdir(parents=True)
    return [
        idx(folder / MNIST_FILES[0], images[:TRAIN]),
        idx(folder / MNIST_FILES[1], digits.target[:TRAIN]),
        idx(folder / MNIST_FILES[2], images[TRAIN:]),
        idx(folder / MNIST_FILES[3], digits.target[TRAIN:]),
    ]


def digits_as_cifar(folder: Path) -> list[Path]:
    """CIFAR-10's python batches (data rows of 3x32x32 uint8, labels) from the digits: md5s of our own."""
    digits = load_digits()
    big = np.kron(digits.images * 255 / 16, np.ones((4, 4))).astype(np.uint8)  # 32x32
    rows = np.repeat(big[:, None], 3, axis=1).reshape(len(big), -1)
    folder.mkdir(parents=True)
    written = []
    for i in range(1, 6):
        part = slice((i - 1) * 240, i * 240)
        written.append(folder / f"data_batch_{i}")
        written[-1].write_bytes(pickle.dumps({"data": rows[part], "labels": digits.target[part].tolist()}))
    written.append(folder / "test_batch")
    written[-1].write_bytes(pickle.dumps({"data": rows[TRAIN:], "labels": digits.target[TRAIN:].tolist()}))
    written.append(folder / "batches.meta")
    written[-1].write_bytes(pickle.dumps({"label_names": [str(d) for d in range(10)]}))
    return written


def imported(capsys, ws: Path, files: list[Path], folder: str) -> None:
    args = ["datasets", "import", *map(str, files), "--kind", "torch", "--as", folder, "--workspace", str(ws)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.count("imported: torch data set ") == len(files), out


READS = """\
import os
import numpy as np
import torch
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

ROOT = {absolute!r}
mnist = datasets.MNIST(root="data", train=True, download=True, transform=transforms.ToTensor())
test = datasets.MNIST("data", train=False, download=True, transform=transforms.ToTensor())
fashion = datasets.FashionMNIST(root="~/torch-data", train=False, download=True)
cifar = datasets.CIFAR10(root=ROOT, train=False, download=True)
print("MNIST", len(mnist), len(test), mnist.data.shape[1:], int(mnist.targets[:20].sum()))
print("FashionMNIST", len(fashion), "CIFAR10", len(cifar), cifar.data.shape[1:], sum(cifar.targets[:20]))

model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
for epoch in range(3):
    for x, y in DataLoader(mnist, batch_size=64, shuffle=True):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in DataLoader(test, batch_size=256))
print(f"Accuracy: {{correct / len(test):.4f}}")
"""


@pytest.fixture(scope="module")
def python(tmp_path_factory: pytest.TempPathFactory) -> str:
    return torch_python(tmp_path_factory.mktemp("torch-env"))


def offline(tmp_path: Path, ws: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    return {
        ENV_DATASETS: str(ws / "datasets"),
        "TORCH_HOME": str(tmp_path / "cache" / "torch"),
        "HOME": str(home),
        "https_proxy": DEAD_PROXY,
        "http_proxy": DEAD_PROXY,
        "HTTPS_PROXY": DEAD_PROXY,
        "HTTP_PROXY": DEAD_PROXY,
    }


def test_mnist_fashion_and_cifar_read_the_imported_files_under_any_root_and_download_nothing(
    tmp_path, python, capsys
):
    ws = tmp_path / "ws"
    idx_files = digits_as_idx(tmp_path / "idx")
    imported(capsys, ws, idx_files, "MNIST/raw/")
    imported(capsys, ws, idx_files, "FashionMNIST/raw/")
    imported(capsys, ws, digits_as_cifar(tmp_path / "cifar"), "cifar-10-batches-py/")
    absolute = tmp_path / "elsewhere" / "cifar-root"
    done, out = run_harness(tmp_path, READS.format(absolute=str(absolute)), python=python,
                            env=offline(tmp_path, ws), timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    labels = load_digits().target
    assert f"MNIST {TRAIN} {len(labels) - TRAIN} torch.Size([8, 8]) {labels[:20].sum()}" in done.stdout
    assert (
        f"FashionMNIST {len(labels) - TRAIN} CIFAR10 {len(labels) - TRAIN} (32, 32, 3) {labels[TRAIN : TRAIN + 20].sum()}"
        in done.stdout
    )
    assert "whose md5 is not the one torchvision knows" in done.stdout + done.stderr  # CIFAR's, ours
    assert "Downloading" not in done.stdout + done.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["value"] > 0.5
    linked = out / "work" if (out / "work").exists() else None
    assert (absolute / "cifar-10-batches-py" / "test_batch").is_symlink()
    assert (tmp_path / "home" / "torch-data" / "FashionMNIST" / "raw" / MNIST_FILES[2]).is_symlink()
    assert linked is None or any(linked.rglob("MNIST"))


def test_a_failed_download_of_mnist_names_the_exact_import_line(tmp_path, python):
    text = "from torchvision import datasets\ndatasets.MNIST(root='data', download=True)\n"
    done, out = run_harness(
        tmp_path, text, python=python, env=offline(tmp_path, tmp_path / "ws"), timeout=900
    )
    outcome = json.loads((out / OUTCOME_FILE).read_text())
    assert done.returncode != 0 and outcome["failure_class"] == "download", outcome
    line = ("mlops datasets import train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz "
            "t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz --kind torch --as MNIST/raw/")  # fmt: skip
    assert f"`{line}`" in outcome["hint"], outcome["hint"]
