"""The parts of PyTorch support that need no torch: the metrics a printed line names, the epoch loops found
in a script's syntax tree and followed while it runs, the PyTorch generation of an environment, and the
order in which a PyTorch script's metric is chosen."""

from __future__ import annotations

import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from mlops.domain import Image
from mlops.envs.base import Base
from mlops.envs.generations import Generation, choose, pins_of, requirements_of
from mlops.envs.needs import Need
from mlops.envs.resolve import Request, plan
from mlops_harness import printed, torch_loops
from mlops_harness.metrics import choose_fallback
from tests.support.envs import write_files


@pytest.mark.parametrize(
    ("line", "kind", "qualifier", "value"),
    [
        ("Accuracy: 97.8 %", "accuracy", "", 0.978),
        ("acc=0.978", "accuracy", "", 0.978),
        ("Test set: Average loss: 0.0330, Accuracy: 9896/10000 (99%)", "accuracy", "test", 0.9896),
        ("Accuracy of the network on the 10000 test images: 97 %", "accuracy", "test", 0.97),
        ("Test Accuracy of the model on the 10000 test images: 97.8 %", "accuracy", "test", 0.978),
        ("Epoch [5/5], Loss: 0.1234, Accuracy: 96.50%", "accuracy", "", 0.965),
        ("Epoch 3: train_loss=0.3 train_acc=0.91 val_acc=0.95", "accuracy", "val", 0.95),
        ("Validation set: accuracy 93.1%", "accuracy", "val", 0.931),
        ("val accuracy is 0.93", "accuracy", "val", 0.93),
        ("test acc: tensor(0.9500)", "accuracy", "test", 0.95),
        ("Test MSE: 0.0123", "loss", "test", 0.0123),
        ("R2 score: 0.87", "r2", "", 0.87),
        ("92.44%", "accuracy", "", 0.9244),  # only a percentage: the script's accuracy
        ("  97 % ", "accuracy", "", 0.97),
    ],
)
def test_a_printed_line_gives_the_metric_it_names(line, kind, qualifier, value):
    found = printed.chosen(printed.mentions(line), kind)
    assert found is not None and found.qualifier == qualifier and found.value == pytest.approx(value)


@pytest.mark.parametrize(
    "line",
    [
        "accumulated 5 batches",
        "Epoch [3/10]",
        "loss nan",
        "x" * 600 + " accuracy 0.9",
        "precision 0.9",
        "50% done",  # a percentage with words around it is not one alone
        "250%",
    ],
)
def test_a_line_that_names_no_metric_gives_none(line):
    assert printed.chosen(printed.mentions(line), "accuracy") is None


SCRIPT = """\
import torch
EPOCHS = 3
def train(loader):
    for x, y in loader:  # a batch loop: not an epoch loop
        pass
for epoch in range(EPOCHS):
    train(loader)
    for phase in ["train", "val"]:
        pass
for i in tqdm(range(10)):
    pass
while True:
    break
"""


def test_loops_over_a_count_are_followed_and_the_innermost_around_a_line_is_the_epoch_loop(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    registry = torch_loops.REGISTRY
    saved = (registry.root, dict(registry.sites), dict(registry.by_key))
    registry.root = str(tmp_path.resolve())
    try:
        torch_loops.rewrite(SCRIPT, str(script))
        real = str(script.resolve())
        lines = sorted(site.line for site in registry.sites[real])
        assert lines == [6, 10]  # range(EPOCHS), tqdm(range(10)); not the batch loop, the phases, the while
        # the training pass starts at line 4 inside train(), called from line 7: the loop at line 6 holds it
        assert registry.enclosing([(real, 4), (real, 7)]).key == "train.py:6:0"
        assert registry.enclosing([(real, 6)]) is None  # the for's own line is not inside its body
    finally:
        registry.root, registry.sites, registry.by_key = saved[0], saved[1], saved[2]


def test_a_followed_loop_gives_the_same_items_and_a_resumed_one_skips_the_finished(tmp_path):
    heard = []

    class Ear(torch_loops.Watcher):
        def next_item(self, loop):
            heard.append(("next", loop.index))

        def ended(self, loop):
            heard.append(("end", loop.index))

    saved = torch_loops.REGISTRY.watcher
    torch_loops.REGISTRY.watcher = Ear()
    try:
        assert list(torch_loops.loop(range(3), "t.py:1:0")) == [0, 1, 2]
        assert heard == [("next", 0), ("next", 1), ("next", 2), ("next", 3), ("end", 3)]
        resumed = torch_loops.loop(range(5), "t.py:1:0")
        assert resumed.instance == 1 and resumed.total == 5
        assert resumed.skip(3) == 3 and list(resumed) == [3, 4]
        assert torch_loops.loop(iter(range(2)), "t.py:2:0").skip(5) == 2  # a loop shorter than the skip
    finally:
        torch_loops.REGISTRY.watcher = saved


def test_a_program_is_pytorch_when_the_script_or_a_local_module_imports_it(tmp_path):
    write_files(
        tmp_path, {"train.py": "from model import fit\nfit()\n", "model.py": "import torch.nn as nn\n"}
    )
    assert torch_loops.is_torch_program(tmp_path / "train.py")
    write_files(tmp_path / "k", {"train.py": "import keras\n", "util.py": "import numpy\n"})
    assert not torch_loops.is_torch_program(tmp_path / "k" / "train.py")
    assert torch_loops.imports_torch("import lightning as L") and torch_loops.imports_torch(
        "from torchmetrics import F1"
    )


def need(text: str, origin: str = "requirements.txt:1") -> Need:
    return Need(text, text.split("=")[0].split("<")[0], origin)


def test_code_that_imports_torch_gets_the_pytorch_generation_whatever_else_it_pins_or_looks_like():
    why = "train.py:3: import torch"
    assert choose([need("keras<3")], legacy_api=True, torch=why) == (Generation.PYTORCH, why)
    assert (
        choose([need("torch==2.1.0")], legacy_api=False)[0] is Generation.PYTORCH
    )  # asked for, not imported
    assert choose([need("pandas")], legacy_api=False)[0] is Generation.CURRENT
    pins = pins_of(Image.PYTORCH)
    assert {"torch", "torchvision"} <= set(pins) and "torch==2.14.1" in requirements_of(Generation.PYTORCH)


class Bases:
    """The builder's side of a plan, with a base of known packages (what plan() asks of it)."""

    runtime = "local"

    def __init__(self):
        self.asked = []

    def base(self, generation, image):
        self.asked.append(generation)
        packages = {"torch": "2.14.1", "torchvision": "0.29.1", "pandas": "3.1.1", "numpy": "2.4.6"}
        return Base(
            "the pytorch base", "id", "/p/python", "", {"packages": packages, "modules": list(packages)}
        )


def test_a_repository_that_lists_other_packages_still_gets_torch_and_the_lightning_it_imports(tmp_path):
    code = write_files(
        tmp_path,
        {
            "requirements.txt": "pandas\nseaborn\n",
            "train.py": """
                import torch
                import lightning as L
                from torchmetrics import Accuracy
                try:
                    from keras.utils import np_utils  # Keras-2-looking, unrelated
                except ImportError:
                    np_utils = None
            """,
        },
    )
    bases = Bases()
    made = plan(Request(code, "train.py", "mlops-keras2", legacy_api=True), bases)
    assert bases.asked == [Generation.PYTORCH] and made.generation is Generation.PYTORCH
    assert made.why.startswith("train.py:2: import torch")
    assert sorted(n.name for n in made.install) == [
        "lightning",
        "seaborn",
        "torchmetrics",
    ]  # torch: the base's


def observations(*rows):
    return SimpleNamespace(observations=[{"name": n, "value": v, "source": s} for n, v, s in rows])


def test_a_printed_test_accuracy_comes_before_a_later_validation_one_and_a_loss_is_last():
    rec = observations(
        ("printed_train_accuracy", 0.99, "printed at t.py:9"),
        ("printed_test_accuracy", 0.97, "printed at t.py:20"),
        ("printed_accuracy", 0.95, "printed at t.py:21"),
        ("printed_loss", 0.1, "printed at t.py:22"),
    )
    chosen, origin = choose_fallback(rec)
    assert (chosen["value"], chosen["source"], origin) == (0.97, "printed at t.py:20", ("observation", 1))
    only_loss = choose_fallback(observations(("printed_test_loss", 0.02, "printed at t.py:30")))
    assert only_loss[0] == {
        "metric": "loss",
        "value": 0.02,
        "source": "printed at t.py:30",
        "lower_is_better": True,
    }
    assert choose_fallback(observations(("printed_train_accuracy", 0.99, "t.py:9"))) is None


def test_the_rewritten_script_keeps_its_lines_for_tracebacks(tmp_path):
    script = tmp_path / "boom.py"
    script.write_text(
        textwrap.dedent("""
        for epoch in range(2):
            x = 1
        raise ValueError("line 4")
    """)
    )
    code = torch_loops.rewrite(script.read_text(), str(script))
    with pytest.raises(ValueError) as caught:
        exec(
            code,
            {"__name__": "__main__", "__builtins__": __builtins__, torch_loops.LOOP_NAME: torch_loops.loop},
        )
    assert caught.traceback[-1].lineno + 1 == 4 and Path(caught.traceback[-1].path) == script


def test_the_curated_import_map_knows_pytorch_s_family():
    from mlops.envs.distributions import distribution_for

    assert [
        distribution_for(m)
        for m in ("torch", "torchvision", "torchmetrics", "lightning", "pytorch_lightning")
    ] == [
        "torch",
        "torchvision",
        "torchmetrics",
        "lightning",
        "pytorch_lightning",
    ]
