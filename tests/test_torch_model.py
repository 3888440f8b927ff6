"""The PyTorch model a trial gives back (issue 25, item 6): its state_dict and a form that loads without the
script's source (torch.export's program, TorchScript where exporting fails), which reproduces the trial's
metric on the script's own test split in a fresh process that has never seen the script."""

from __future__ import annotations

import json
import subprocess
import sysconfig
from pathlib import Path

import pytest

from mlops_harness.protocol import EVENTS_FILE, EventKind, ModelFormat, file_sha256, read_events
from tests.support.processes import run_harness
from tests.support.torch_scripts import DIGITS_28, PLAIN_CNN, script, torch_python

pytestmark = pytest.mark.slow

# The script's test split made again, and the returned model's accuracy on it: no line of the script.
EVALUATE = (
    DIGITS_28
    + """\
import sys
fmt, path = sys.argv[1], sys.argv[2]
if fmt == "mlflow":  # MLflow's own loader of its pytorch flavour
    sys.path.append(sys.argv[3])  # mlflow, from mlops's environment
    import mlflow.pytorch

    model = mlflow.pytorch.load_model(path)
else:
    model = torch.export.load(path).module() if fmt == "torch_export" else torch.jit.load(path)
with torch.no_grad():
    predicted = model(torch.tensor(X_test)).argmax(1).numpy()
print(float((predicted == y_test).mean()))
"""
)

# forward branches on the data: torch.export refuses it, TorchScript compiles it.
BRANCHING = (
    DIGITS_28
    + """\
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(784, 10)

    def forward(self, x):
        x = torch.flatten(x, 1)
        if x.sum() > 0:
            return self.fc(x)
        return self.fc(-x)

model = Net()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
loader = DataLoader(TensorDataset(torch.tensor(X_train), torch.tensor(y_train)), batch_size=64, shuffle=True)
for epoch in range(3):
    for x, y in loader:
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
model.eval()
with torch.no_grad():
    predicted = model(torch.tensor(X_test)).argmax(1).numpy()
print(f"Accuracy: {(predicted == y_test).mean():.6f}")
"""
)


@pytest.fixture(scope="module")
def python(tmp_path_factory: pytest.TempPathFactory) -> str:
    return torch_python(tmp_path_factory.mktemp("torch-env"))


def returned_accuracy(python: str, model: Path, fmt: str, where: Path) -> float:
    """The model's accuracy on the script's test split, in a fresh process in a folder without the script."""
    where.mkdir(exist_ok=True)
    (where / "evaluate.py").write_text(EVALUATE)
    site = sysconfig.get_paths()["purelib"]
    done = subprocess.run(
        [python, "evaluate.py", fmt, str(model), site], cwd=where, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return float(done.stdout.strip().splitlines()[-1])


def mlflow_folder(model: dict, out: Path, folder: Path) -> Path:
    """The MLflow model mlops logs for this model (as mlops.mlflow_log does, from the file and its card)."""
    from mlops.mlflow_model import write_mlflow_model

    card = {"format": model["format"], "versions": model["versions"]}
    logged = write_mlflow_model(card, out / model["file"], folder)
    logged.save(str(folder / "MLmodel"))
    return folder


def trained(tmp_path: Path, python: str, text: str) -> tuple[dict, dict, Path]:
    done, out = run_harness(tmp_path, text, python=python, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    [model] = [e for e in read_events(out / EVENTS_FILE) if e.kind is EventKind.MODEL]
    return metrics, model.fields, out


def test_a_plain_loop_s_model_is_exported_and_reproduces_its_metric_without_the_script(tmp_path, python):
    metrics, model, out = trained(tmp_path, python, script(PLAIN_CNN, 2))
    assert model["saved"], model
    assert (model["format"], model["file"], model["framework"]) == (
        "torch_export",
        "model/model.pt2",
        "pytorch",
    )
    assert model["class"] == "Net" and model["input"] == {
        "kind": "array",
        "shape": [None, 1, 28, 28],
        "dtype": "float32",
    }
    assert model["sha256"] == file_sha256(out / "model" / "model.pt2")
    assert model["versions"]["torch"].startswith("2.")
    weights = model["state_dict"]
    assert weights["file"] == "model/model.pt" and weights["sha256"] == file_sha256(
        out / "model" / "model.pt"
    )
    got = returned_accuracy(python, out / "model" / "model.pt2", "torch_export", tmp_path / "elsewhere")
    assert got == pytest.approx(metrics["value"], abs=1e-4)
    keys = subprocess.run(
        [python, "-c", "import sys, torch; print(sorted(torch.load(sys.argv[1], weights_only=True)))",
         str(out / "model" / "model.pt")],
        capture_output=True, text=True, timeout=600, cwd=tmp_path / "elsewhere",
    )  # fmt: skip
    logged = mlflow_folder(model, out, tmp_path / "mlflow-model")
    assert "pytorch:" in (logged / "MLmodel").read_text() and (logged / "data" / "model.pt2").is_file()
    by_mlflow = returned_accuracy(python, logged, "mlflow", tmp_path / "elsewhere")
    assert by_mlflow == pytest.approx(metrics["value"], abs=1e-4)
    assert keys.stdout.strip() == str(
        sorted(f"{n}.{p}" for n in ("conv1", "fc1", "fc2") for p in ("bias", "weight"))
    )


def test_a_model_torch_export_refuses_is_returned_as_torchscript_with_the_same_metric(tmp_path, python):
    metrics, model, out = trained(tmp_path, python, BRANCHING)
    assert model["saved"], model
    assert (model["format"], model["file"]) == (ModelFormat.TORCHSCRIPT.value, "model/model.ts")
    assert model["tried"] and model["tried"][0].startswith("export:")  # why the first form was not kept
    got = returned_accuracy(python, out / "model" / "model.ts", "torchscript", tmp_path / "elsewhere")
    assert got == pytest.approx(metrics["value"], abs=1e-4)
    logged = mlflow_folder(model, out, tmp_path / "mlflow-model")
    assert (logged / "data" / "model.pth").is_file() and "python_function" in (logged / "MLmodel").read_text()
    assert returned_accuracy(python, logged, "mlflow", tmp_path / "elsewhere") == pytest.approx(got, abs=1e-6)
