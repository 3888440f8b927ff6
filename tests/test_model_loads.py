"""Issue 17, as it will be checked: after ``mlops run``, the model in ``runs/<run>/model/`` loads in a fresh
process with ``keras.models.load_model`` or ``joblib.load``, and its metric on the script's own test split
equals the one the run reported (within 1e-6 for scikit-learn, 1e-4 for Keras).

The example models are checked by ``test_pipeline.py::test_the_example_models_all_reach_the_target`` (one
run of ``models/`` for both); here, the weak models of ``bench/`` on the local runtime, and one on Docker,
measured inside a container of the image it trained in.
"""

from __future__ import annotations

import json

import pytest

from tests.support.model_checks import RECIPES, assert_model_gives_its_metric, program
from tests.support.processes import run_cli
from tests.support.repos import ROOT, make_repo

WEAK = ROOT / "bench" / "weak_models"


def history(ws, cwd) -> list[dict]:
    done = run_cli("history", "--json", "--workspace", str(ws), cwd=cwd)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


# One of each way a metric is measured: Keras's validation accuracy (tf.keras, a CNN), Keras's evaluate (the
# functional API), a classifier's score, a clustering's silhouette. (All nine recipes pass; four keep it short.)
CHOSEN = ("cnn_4_filters.py", "functional_api.py", "sklearn_mlp.py", "kmeans_iris.py")


@pytest.mark.slow
def test_weak_models_give_back_a_model_that_measures_what_was_reported(tmp_path):
    repo = make_repo(tmp_path / "weak", {name: (WEAK / name).read_text() for name in CHOSEN})
    ws = tmp_path / "ws"
    done = run_cli(
        "run", str(repo), "--runtime", "local", "--workspace", str(ws), "--max-trials", "2", "--target", "0.99",
        cwd=tmp_path, timeout=1200,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    runs = history(ws, tmp_path)
    assert sorted(r["script"] for r in runs) == sorted(CHOSEN) and set(RECIPES) >= set(CHOSEN)
    frameworks = set()
    for run in runs:
        card = assert_model_gives_its_metric(run)
        frameworks.add(card["framework"])
        assert card["check"]["runtime"] == "local"
        trials = ws / "runs" / run["run"] / "trials"
        assert not list(trials.glob("*/model")) and not list(trials.glob("*/checkpoints"))  # space let go
    assert frameworks == {"keras", "sklearn"}


@pytest.mark.slow
@pytest.mark.docker
def test_on_docker_the_model_is_checked_and_measured_in_its_own_image(
    tmp_path, docker_images, docker_runtime
):
    ws = tmp_path / "ws"
    docker_runtime(ws)  # its containers are removed after the test
    done = run_cli(
        "run", str(WEAK / "sklearn_mlp.py"), "--runtime", "docker", "--workspace", str(ws), "--max-trials", "2",
        cwd=tmp_path, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    (run,) = history(ws, tmp_path)
    runtime = docker_runtime(ws)
    tag = docker_images["mlops-sklearn"]

    def in_the_image(model_path, script: str) -> float:
        output = runtime.client.containers.run(
            tag,
            ["-c", program(script), f"/model/{model_path.name}"],
            entrypoint=["python"],
            volumes={str(model_path.parent): {"bind": "/model", "mode": "ro"}},
            network_mode="none",
            user="1000:1000",
            remove=True,
        )
        return float(output.decode().strip().splitlines()[-1])

    card = assert_model_gives_its_metric(run, measure_with=in_the_image)
    assert (
        card["check"]["runtime"] == "docker" and card["check"]["image"] == tag
    )  # the exact image it was checked in
    assert card["environment"] == {"runtime": "docker", "image": "mlops-sklearn"}
    assert card["versions"]["scikit-learn"] == "1.9.1" and card["check"]["versions"] == card["versions"]
