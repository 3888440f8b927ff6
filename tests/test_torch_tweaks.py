"""PyTorch tweaks: each golden "after" file still builds its model and runs a forward pass (with torch
installed), the pre-training shape check catches layers that no longer chain and passes every golden
file, the facts of a PyTorch source, and the framework chosen in one place."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from mlops.classify import Framework
from mlops.domain import Kind
from tests.support.torch_scripts import torch_python
from tweak.codemods import REGISTRY, AddDenseLayer, ScaleFilters, SetEpochs, TweakNotApplicable, apply_tweaks
from tweak.facts import check_variant, model_facts
from tweak.framework import code_of
from tweak.strategies import TPE, Ladder, SearchState

GOLDEN = Path(__file__).parent / "golden" / "tweak"
CASES = [c for c in json.loads((GOLDEN / "cases.json").read_text()) if c["case"].startswith("torch_")]
# The shape of one sample each model takes (batch first is added), and the classes it gives.
INPUTS = {
    "torch_cnn": (1, 28, 28),
    "torch_examples": (1, 28, 28),
    "torch_seq": (1, 28, 28),
    "torch_mlp": (64,),
    "torch_lightning": (8, 8),
    "torch_lazy": (1, 28, 28),
    "torch_defs": (1, 28, 28),
    "torch_lit_seq": (1, 28, 28),
}
CLASSES = 10
CHECK = Path(__file__).parent / "support" / "torch_golden_check.py"


def torch_files(built: bool = True) -> list[Path]:
    """The PyTorch golden files; ``built``: only those whose models the code writes (not torchvision's)."""
    cases = {c["case"] for c in CASES} & (set(INPUTS) if built else {c["case"] for c in CASES})
    befores = [GOLDEN / f"{case}.before.py" for case in sorted(cases)]
    return befores + [GOLDEN / f"{c['out']}.after.py" for c in CASES if "out" in c and c["case"] in cases]


@pytest.fixture(scope="module")
def golden_checked(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """What tests/support/torch_golden_check.py finds wrong in each golden file, run once by the interpreter
    of the PyTorch environment mlops builds (torch is not in the development venv)."""
    python = torch_python(tmp_path_factory.mktemp("torch-env"))
    files = [str(p) for p in torch_files()]
    done = subprocess.run(  # noqa: S603 (our own check script on our own golden files)
        [python, str(CHECK), str(CLASSES), json.dumps(INPUTS), *files],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return {row["file"]: row["problems"] for row in rows}


@pytest.mark.slow
@pytest.mark.parametrize("path", torch_files(), ids=lambda p: p.name)
def test_every_golden_model_builds_runs_a_forward_pass_and_trains_a_step(path, golden_checked):
    assert path.name in golden_checked, f"the check printed nothing for {path.name}"
    assert golden_checked[path.name] == []


@pytest.mark.parametrize("path", torch_files(built=False), ids=lambda p: p.name)
def test_the_shape_check_passes_every_golden_file(path):
    assert check_variant(path.read_text()) is None


CNN = (GOLDEN / "torch_cnn.before.py").read_text()
SHAPED = CNN.replace(
    "    def forward(self, x):\n", "    def forward(self, x):\n        x = x.view(-1, 1, 28, 28)\n"
)
SEQ = (GOLDEN / "torch_seq.before.py").read_text()


@pytest.mark.parametrize(
    ("source", "old", "new", "expected"),
    [
        (
            CNN,
            "nn.Linear(120, 84)",
            "nn.Linear(100, 84)",
            "nn.Linear at line 21 takes 100 input features but gets 120",
        ),
        (
            CNN,
            "nn.Linear(16 * 4 * 4, 120)",
            "nn.Linear(16 * 5 * 5, 120)",
            "takes 400 input features but gets 256 from the view at line 27",
        ),
        (
            SHAPED,
            "x.view(-1, 16 * 4 * 4)",
            "x.view(-1, 16 * 5 * 5)",
            "the view at line 28 makes 400 features but nn.Conv2d at line 19 (16 channels of 4x4) gives 256",
        ),
        (
            SHAPED,
            "nn.Conv2d(6, 16, 5)",
            "nn.Conv2d(6, 32, 5)",
            "makes 256 features but nn.Conv2d at line 19 (32 channels of 4x4) gives 512",
        ),
        (
            CNN,
            "nn.Conv2d(6, 16, 5)",
            "nn.Conv2d(12, 16, 5)",
            "nn.Conv2d at line 19 takes 12 input channels but gets 6 from nn.Conv2d at line 17",
        ),
        (
            SEQ,
            "nn.BatchNorm2d(16)",
            "nn.BatchNorm2d(32)",
            "nn.BatchNorm2d at line 15 takes 32 input channels but gets 16",
        ),
        (
            SEQ,
            "nn.Linear(32 * 7 * 7, 128)",
            "nn.Linear(30 * 7 * 7, 128)",
            "takes 1470 input features, not a multiple of the 32 channels",
        ),
    ],
)
def test_a_variant_whose_layers_no_longer_chain_is_caught_before_training(source, old, new, expected):
    assert old in source
    assert check_variant(source) is None
    problem = check_variant(source.replace(old, new))
    assert problem is not None and expected in problem


def test_the_facts_of_a_pytorch_source():
    facts = model_facts(CNN)
    assert [(ly.kind, ly.units or ly.filters) for ly in facts.layers] == [
        ("conv", 6),
        ("pool", None),
        ("conv", 16),
        ("pool", None),
        ("flatten", None),
        ("dense", 120),
        ("dense", 84),
        ("dense", 10),
    ]
    assert (facts.epochs, facts.batch_size, facts.optimizer, facts.learning_rate) == (3, 64, "SGD", 0.01)
    assert model_facts(SHAPED).input_shape == (1, 28, 28)
    examples = model_facts((GOLDEN / "torch_examples.before.py").read_text())  # argparse defaults
    assert (examples.epochs, examples.batch_size, examples.optimizer, examples.learning_rate) == (
        14,
        64,
        "Adadelta",
        1.0,
    )
    mlp = model_facts((GOLDEN / "torch_mlp.before.py").read_text())  # Adam without lr: its default
    assert (mlp.epochs, mlp.learning_rate, [ly.units for ly in mlp.layers]) == (20, 1e-3, [32, 10])
    lightning = model_facts((GOLDEN / "torch_lightning.before.py").read_text())
    assert (lightning.epochs, lightning.batch_size, lightning.learning_rate) == (5, 32, 1e-3)


def test_the_framework_is_the_recorded_one_else_the_classifiers():
    keras = (GOLDEN / "seq_add.before.py").read_text()
    assert code_of(CNN) is Framework.PYTORCH and code_of(keras) is Framework.KERAS
    # A PyTorch script with an unrelated Keras import is PyTorch code: it gets the PyTorch rewrite.
    mixed = "from keras.utils import np_utils  # left over\n" + CNN
    assert "self.conv3 = nn.Conv2d(16, 32, 3, padding=1)" in REGISTRY["add_conv_block"](filters=32).apply(
        mixed
    )
    # The recorded framework wins over the classifier's: Keras code read as PyTorch has no PyTorch model.
    result = apply_tweaks(keras, [AddDenseLayer(units=8)], framework="pytorch")
    assert result.skipped == [
        ("add_dense_layer", "no nn.Linear layer: there is no output layer to put a hidden layer before")
    ]
    assert apply_tweaks(keras, [AddDenseLayer(units=8)], framework="keras").applied


def state(source: str, number: int, kind: Kind = Kind.CNN) -> SearchState:
    facts = model_facts(source)
    return SearchState(
        kind=kind, framework="pytorch", facts=facts, target=0.8, seed=0, number=number, past=[]
    )


@pytest.mark.parametrize("strategy", [TPE(), Ladder()], ids=lambda s: s.name)
def test_the_strategies_typed_tweaks_rewrite_pytorch_code_into_variants_that_pass_the_check(strategy):
    for number in (1, 2, 3):
        proposal = strategy.propose(state(CNN, number))
        assert proposal is not None
        result = apply_tweaks(CNN, proposal.tweaks)
        assert result.applied, result.skipped
        assert check_variant(result.source) is None, result.source
    first = TPE().propose(state(CNN, 1))
    assert ScaleFilters(factor=32 / 6) in first.tweaks and SetEpochs(epochs=20) in first.tweaks


def test_every_pytorch_codemod_module_has_a_one_line_description():
    import importlib

    folder = Path(__file__).parent.parent / "tweak" / "codemods"
    for path in sorted(folder.glob("torch_*.py")):
        if path.stem == "torch_edits":
            continue
        module = importlib.import_module(f"tweak.codemods.{path.stem}")
        assert module.DESCRIPTION and "\n" not in module.DESCRIPTION, path.name


RESIDUAL = """import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.conv(x) + x)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 16, 3, padding=1)
        self.block = Block(16)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.block(self.stem(x))), 1))


def train(model, epochs=3):
    for epoch in range(epochs):
        pass


train(Net(), epochs=5)
"""


def test_a_block_the_flow_cannot_follow_stops_widening_and_the_model_is_the_outermost_one():
    with pytest.raises(
        TweakNotApplicable, match=r"nn.Conv2d at line 17 kept: its output goes through self.block"
    ):
        ScaleFilters(factor=2).apply(RESIDUAL)
    scaled = REGISTRY["add_rescaling"]().edit(RESIDUAL)
    assert scaled.description == "divide the inputs by 255 first in Net.forward"  # not in the Block's


def test_epochs_read_from_a_parameter_are_set_where_the_function_is_called_too():
    done = SetEpochs(epochs=12).edit(RESIDUAL)
    assert "def train(model, epochs=12):" in done.source and "train(Net(), epochs=12)" in done.source


def test_the_one_loader_that_does_not_evaluate_is_the_training_one():
    source = (
        "import torch\nfrom torch.utils.data import DataLoader\n"
        "loader = DataLoader(ds, 32)\nval_loader = DataLoader(val_ds, 32)\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
    )
    after = REGISTRY["set_batch_size"](batch_size=8).apply(source)
    assert "loader = DataLoader(ds, 8)" in after and "val_loader = DataLoader(val_ds, 32)" in after


RAW_PIXELS = """\
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

X_train = torch.tensor(pixels_train, dtype=torch.float32)
X_test = torch.tensor(pixels_test, dtype=torch.float32)
loader = DataLoader(TensorDataset(X_train, torch.tensor(y_train)), batch_size=64, shuffle=True)
model = nn.Sequential(nn.Linear(64, 32), nn.Sigmoid(), nn.Linear(32, 10))
optimizer = torch.optim.SGD(model.parameters(), lr=0.001)
for epoch in range(2):
    for xb, yb in loader:
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(xb), yb).backward()
        optimizer.step()
"""


@pytest.mark.parametrize(
    "seen, rescaled", [({"min": 0.0, "max": 255.0}, True), ({"min": 0.0, "max": 1.0}, False)]
)
def test_inputs_trial_0_saw_in_0_to_255_make_tpe_rescale_pytorch_data_where_it_becomes_a_float_tensor(
    seen, rescaled
):
    # What the harness records of a training DataLoader over a TensorDataset (mlops_harness/torch_training.py).
    inputs = {"fit": 0, "samples": 1347, "dtype": "float32", **seen}
    base = state(RAW_PIXELS, 1, Kind.ANN)
    proposal = TPE().propose(SearchState(**{**base.__dict__, "inputs": inputs}))
    assert proposal is not None
    result = apply_tweaks(RAW_PIXELS, proposal.tweaks, framework="pytorch")
    divided = "X_train = torch.tensor(pixels_train, dtype=torch.float32) / 255.0" in result.source
    assert (
        divided is rescaled
        and ("X_test = torch.tensor(pixels_test, dtype=torch.float32) / 255.0" in result.source) is rescaled
    ), result.source
    assert ("0..255" in proposal.note) is rescaled, proposal.note
    assert check_variant(result.source, "pytorch") is None
