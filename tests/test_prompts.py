"""Hyperparameters asked with input(): answered from mlops.yaml, recorded by the harness, tuned like any other."""

from __future__ import annotations

import json
import textwrap

import pytest

from mlops_harness.protocol import EVENTS_FILE, INPUTS_FILE, EventKind, encode_event
from tests.support.processes import run_cli, run_harness
from tests.support.repos import make_repo
from tweak.prompts import Prompt, Role, prompts_of, role_of
from tweak.strategies import TPE, Ladder, Past, SearchState

ASKS = """
    epochs = int(input("number of epochs? "))
    units = int(input("how many neurons in the hidden layer? "))
    print("training", epochs, units)
    open("accuracy.txt", "w").write(str(min(0.99, units / 100)))
"""


@pytest.mark.parametrize(
    ("prompt", "role"),
    [
        ("number of epochs? ", Role.EPOCHS),
        ("Enter no. of epoch: ", Role.EPOCHS),
        ("how many convolution layers? ", Role.LAYERS),
        ("how many neurons in the hidden layer? ", Role.UNITS),
        ("number of filters: ", Role.FILTERS),
        ("learning rate? ", Role.LEARNING_RATE),
        ("batch size: ", Role.BATCH_SIZE),
        ("your name? ", None),
    ],
)
def test_a_prompt_names_its_hyperparameter(prompt, role):
    assert role_of(prompt) is role


def test_the_harness_answers_prompts_from_the_trial_s_inputs_and_records_them(tmp_path):
    (tmp_path / "trial").mkdir()
    (tmp_path / "trial" / INPUTS_FILE).write_text(json.dumps({"answers": ["3", "8"]}))
    done, out = run_harness(tmp_path, ASKS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "number of epochs? 3" in done.stdout and "training 3 8" in done.stdout
    assert [(p.index, p.answer, p.role) for p in prompts_of(out)] == [
        (0, "3", Role.EPOCHS),
        (1, "8", Role.UNITS),
    ]


def test_fewer_answers_than_prompts_fail_at_once_naming_the_prompt_without_one(tmp_path):
    (tmp_path / "trial").mkdir()
    (tmp_path / "trial" / INPUTS_FILE).write_text(json.dumps({"answers": ["3"]}))
    done, out = run_harness(tmp_path, ASKS, timeout=60)
    assert done.returncode == 1
    outcome = json.loads((out / "outcome.json").read_text())
    assert outcome["failure_class"] == "input"
    assert (
        "'how many neurons in the hidden layer?'" in outcome["hint"] and "gives 1 answer" in outcome["hint"]
    )


def test_an_answer_the_script_cannot_read_is_named_with_its_prompt(tmp_path):
    (tmp_path / "trial").mkdir()
    (tmp_path / "trial" / INPUTS_FILE).write_text(json.dumps({"answers": ["ten", "8"]}))
    done, out = run_harness(tmp_path, ASKS, timeout=60)
    outcome = json.loads((out / "outcome.json").read_text())
    assert outcome["failure_class"] == "input"
    assert "the answer 'ten' that mlops.yaml gives to 'number of epochs?' (inputs: item 1)" in outcome["hint"]


def asked(tmp_path) -> list[Prompt]:
    lines = [
        encode_event(EventKind.INPUT, index=0, prompt="number of epochs? ", answer="2"),
        encode_event(EventKind.INPUT, index=1, prompt="neurons? ", answer="4"),
        encode_event(EventKind.INPUT, index=2, prompt="your name? ", answer="ada"),
    ]
    (tmp_path / EVENTS_FILE).write_text("\n".join(lines) + "\n")
    return prompts_of(tmp_path)


def test_strategies_tune_the_answers_of_hyperparameter_prompts(tmp_path):
    from mlops.domain import Kind, TrialStatus
    from tweak.facts import model_facts

    prompts = asked(tmp_path)
    assert [p.role for p in prompts] == [Role.EPOCHS, Role.UNITS, None]
    source = "from sklearn.neural_network import MLPClassifier\nMLPClassifier(hidden_layer_sizes=(u,), max_iter=e)\n"
    base = dict(
        kind=Kind.ANN, framework="sklearn", facts=model_facts(source), target=0.8, seed=0, prompts=prompts
    )
    first = TPE().propose(SearchState(**base, number=1, past=[Past(0, [], TrialStatus.SUCCEEDED, 0.2)]))
    assert first.inputs == {0: "20", 1: "128"} and first.tweaks == []  # the answers, not the code
    second = TPE().propose(
        SearchState(
            **base,
            number=2,
            past=[
                Past(0, [], TrialStatus.SUCCEEDED, 0.2),
                Past(1, [], TrialStatus.SUCCEEDED, 0.5, first.params),
            ],
        )
    )
    assert set(second.inputs) <= {0, 1} and second.inputs
    ladder = [Ladder().propose(SearchState(**base, number=n, past=[])) for n in (1, 2, 3, 4)]
    assert [p.inputs for p in ladder[:3]] == [{}, {0: "6"}, {0: "6", 1: "8"}]


SCRIPT = """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    iterations = int(input("number of epochs? "))
    neurons = int(input("how many neurons in the hidden layer? "))
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, random_state=0)
    clf = MLPClassifier(hidden_layer_sizes=(neurons,), max_iter=iterations, random_state=0)
    clf.fit(X_train, y_train)
    print("accuracy", clf.score(X_test, y_test))
"""


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["local", pytest.param("docker", marks=pytest.mark.docker)])
def test_a_script_tuned_only_through_its_answers_reaches_the_target(tmp_path, runtime, request):
    if runtime == "docker":
        request.getfixturevalue("docker_images")
    repo = make_repo(tmp_path / "repo", {"mlp.py": SCRIPT, "mlops.yaml": "inputs: [2, 2]\n"})
    ws = tmp_path / "ws"
    done = run_cli("run", str(repo), "--runtime", runtime, "--workspace", str(ws), cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    (summary,) = [
        json.loads(line)
        for line in run_cli("history", "--json", "--workspace", str(ws), cwd=tmp_path).stdout.splitlines()
    ]
    assert summary["reached"] is True and summary["baseline_metric"] < 0.8
    shown = json.loads(run_cli("show", summary["run"], "--json", "--workspace", str(ws), cwd=tmp_path).stdout)
    best = shown["trial_list"][summary["best_trial"]]
    assert any(
        c.startswith("answer to 'how many neurons in the hidden layer' 2 -> ") for c in best["changes"]
    )
    kept = (ws / "runs" / summary["run"] / "best.inputs.yaml").read_text()
    assert "inputs:" in kept and "# how many neurons in the hidden layer?" in kept
    assert (
        textwrap.dedent(SCRIPT) == (ws / "runs" / summary["run"] / "best.py").read_text()
    )  # the code as pushed
