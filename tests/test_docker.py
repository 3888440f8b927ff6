"""Training in containers on a real Docker engine: images, isolation, limits, the whole chain, and chaos."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import docker
import pytest

from mlops import images
from mlops.domain import TrialStatus
from mlops.errors import RuntimeUnavailable, TrialLaunchError
from mlops.progress import Progress
from mlops.runtime.base import TrialSpec
from mlops.runtime.docker import DockerRuntime
from monitor.supervisor import RestartPolicy, Supervisor
from tests.support.processes import run_cli
from tests.support.repos import ROOT
from tests.support.trials import ledger_trial, trial_spec

pytestmark = pytest.mark.docker


def spec_for(tmp_path, name, script, image="mlops-sklearn", network=True, **limits) -> TrialSpec:
    return trial_spec(tmp_path, name, script, image=image, network=network, **{"cpus": 1.0, **limits})


def test_an_up_to_date_image_is_not_rebuilt_and_its_tag_follows_its_inputs(docker_images, tmp_path):
    runtime = DockerRuntime.from_env(tmp_path)
    tag, built = runtime.build("mlops-sklearn")
    assert not built and tag == docker_images["mlops-sklearn"] == images.tag("mlops-sklearn")
    assert tag.split(":")[1] == images.content_hash("mlops-sklearn")
    attrs = runtime.client.images.get(tag).attrs
    assert attrs["Config"]["User"] == "trainer"
    assert attrs["Config"]["Entrypoint"] == ["python", "/opt/mlops/mlops_harness"]


def test_a_missing_dockerfile_and_an_engine_that_does_not_answer_are_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(RuntimeUnavailable, match=r"no Dockerfile for image mlops-jax .*--runtime local"):
        images.dockerfile("mlops-jax")
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")
    with pytest.raises(
        RuntimeUnavailable, match=r"no Docker engine answers at tcp://127\.0\.0\.1:9.*docker-setup"
    ):
        DockerRuntime.from_env(tmp_path)


def test_the_container_is_locked_down_and_labelled(docker_runtime, tmp_path):
    runtime = docker_runtime(tmp_path / "ws")
    spec = spec_for(
        tmp_path,
        "locked",
        """
        import os, socket
        print("uid", os.getuid())
        try:
            open("/code/locked.py", "a")
        except OSError as e:
            print("code is read-only:", e.errno)
        try:
            socket.create_connection(("1.1.1.1", 53), timeout=2)
        except OSError:
            print("no network")
        open("accuracy.txt", "w").write("0.5")
    """,
        network=False,
        pids=64,
    )
    handle = runtime.run(spec)
    container = runtime.client.containers.get(handle.container_id)
    host = container.attrs["HostConfig"]
    assert host["CapDrop"] == ["ALL"] and "no-new-privileges" in host["SecurityOpt"]
    assert host["ReadonlyRootfs"] is True and host["NetworkMode"] == "none"
    assert host["Memory"] == 1024 * 2**20 and host["MemorySwap"] == 1024 * 2**20
    assert host["NanoCpus"] == 10**9 and host["PidsLimit"] == 64
    mounts = {m["Destination"]: m for m in container.attrs["Mounts"]}
    assert (
        mounts["/code"]["RW"] is False
        and mounts["/trial"]["RW"] is True
        and mounts["/cache"]["Type"] == "volume"
    )
    assert container.labels["mlops.run"] == "locked" and container.labels["mlops.trial"] == "0"
    lines = list(runtime.logs(handle))
    outcome = runtime.wait(handle)
    runtime.remove(handle)
    assert outcome.ok, lines
    uid = next(int(line.split()[1]) for line in lines if line.startswith("uid "))
    assert uid != 0
    assert any(line.startswith("code is read-only:") for line in lines) and "no network" in lines
    with pytest.raises(docker.errors.NotFound):
        runtime.client.containers.get(handle.container_id)


def test_the_chain_runs_in_containers_and_leaves_none_behind(docker_images, tmp_path):
    ws = tmp_path / "ws"
    done = run_cli(
        "run",
        str(ROOT / "models" / "kmeans.py"),
        "--runtime",
        "docker",
        "--workspace",
        str(ws),
        cwd=tmp_path,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert "runtime: docker" in done.stdout
    (run,) = [
        json.loads(line)
        for line in run_cli("history", "--json", "--workspace", str(ws), cwd=tmp_path).stdout.splitlines()
    ]
    assert run["runtime"] == "docker" and run["image"] == "mlops-sklearn" and run["reached"] is True
    client = docker.from_env()
    assert client.containers.list(all=True, filters={"label": f"mlops.workspace={ws.resolve()}"}) == []
    trial_log = (ws / "runs" / run["run"] / "trials" / "1" / "log.txt").read_text()
    assert "[mlops] metric silhouette=" in trial_log


@pytest.mark.slow
def test_a_container_killed_mid_epoch_resumes_from_its_checkpoint(docker_runtime, tmp_path):
    script = """
        import time
        import keras
        from sklearn.datasets import load_digits
        X, y = load_digits(return_X_y=True)
        class Pace(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                time.sleep(0.03)
        model = keras.Sequential([keras.Input(shape=(64,)), keras.layers.Dense(32, activation="relu"),
                                  keras.layers.Dense(10, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(X / 16.0, y, epochs=6, batch_size=64, validation_split=0.2, callbacks=[Pace()])
    """
    runtime = docker_runtime(tmp_path / "ws")
    spec = spec_for(tmp_path, "chaos", script, image="mlops-keras3", timeout_s=600, memory_mb=2048, cpus=None)
    ledger, run, trial = ledger_trial(spec, runtime="docker")
    kills = []

    def killer():
        for after in (2, 4):
            while (
                f"[mlops] epoch {after}/" not in (spec.trial_dir / "log.txt").read_text(errors="ignore")
                if (spec.trial_dir / "log.txt").exists()
                else True
            ):
                time.sleep(0.05)
            time.sleep(0.3)
            runtime.kill_container(ledger.trial(run.id, 0).handle)
            kills.append(after)

    threading.Thread(target=killer, daemon=True).start()
    devnull = open(os.devnull, "w")  # noqa: SIM115
    finished = Supervisor(runtime, ledger, Progress(devnull), RestartPolicy(base_delay_s=0.1)).execute(
        run, trial, spec
    )
    assert kills == [2, 4]
    assert finished.status is TrialStatus.SUCCEEDED and finished.restarts == 2
    metrics = json.loads((spec.trial_dir / "metrics.json").read_text())
    assert sorted({h["epoch"] for h in metrics["history"]}) == [1, 2, 3, 4, 5, 6]
    assert [r["epoch"] for r in metrics["resumed"]] == [2, 4]  # resumed where it stopped, not from 0


@pytest.mark.slow
def test_legacy_keras_2_code_runs_unchanged_in_the_keras2_image(docker_images, repo_factory, tmp_path):
    script = (ROOT / "tests" / "fixtures" / "legacy" / "legacy_cnn.py").read_text()
    repo = repo_factory({"legacy_cnn.py": script})
    ws = tmp_path / "ws"
    done = run_cli(
        "run",
        str(repo),
        "--runtime",
        "docker",
        "--workspace",
        str(ws),
        "--max-trials",
        "2",
        cwd=tmp_path,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    (run,) = [
        json.loads(line)
        for line in run_cli("history", "--json", "--workspace", str(ws), cwd=tmp_path).stdout.splitlines()
    ]
    assert run["image"] == "mlops-keras2"
    assert run["baseline_metric"] is not None  # np_utils, lr= and nb_epoch ran as written
    notes = [line.strip() for line in done.stdout.splitlines() if line.strip().startswith("note:")]
    assert any("keras.utils.np_utils" in n for n in notes) and any("nb_epoch" in n for n in notes), notes
    assert run["reached"] is True
    card = json.loads((Path(run["model"]).parent / "model.json").read_text())  # Keras 2's model, loaded
    assert card["versions"]["keras"].startswith("2.") and card["format"] == "keras"  # in its own image
    assert card["check"]["loaded"] is True and card["check"]["image"] == docker_images["mlops-keras2"]


def test_the_monitor_sees_container_deaths_on_the_event_stream(docker_runtime, tmp_path):
    runtime = docker_runtime(tmp_path / "ws")
    spec = spec_for(tmp_path, "dies", "import time\nprint('up', flush=True)\ntime.sleep(600)\n")
    handle = runtime.run(spec)
    for line in runtime.logs(handle):
        if line == "up":
            break
    threading.Timer(0.5, runtime.kill_container, args=(handle.data,)).start()
    deaths = runtime.deaths(timeout_s=5)
    runtime.remove(handle)
    assert {"event": "die", "run": "dies", "trial": "0", "exit": "137"} in deaths


SMALL_KERAS = """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from tensorflow import keras
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, test_size=0.25, random_state=0)
    model = keras.Sequential([keras.layers.Dense(32, activation="relu", input_shape=(64,)),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(X_train, y_train, epochs=4, batch_size=16, validation_data=(X_test, y_test), verbose=2)
    import keras as standalone
    print("keras", standalone.__version__)
"""


@pytest.mark.parametrize("image", ["mlops-keras3", "mlops-keras2"])
def test_a_small_keras_model_trains_in_its_image(docker_runtime, tmp_path, image):
    runtime = docker_runtime(tmp_path / "ws")
    spec = spec_for(tmp_path, "digits_mlp", SMALL_KERAS, image=image, memory_mb=2048, cpus=2.0)
    handle = runtime.run(spec)
    lines = list(runtime.logs(handle))
    outcome = runtime.wait(handle)
    runtime.remove(handle)
    assert outcome.ok, lines[-20:]
    major = "3" if image == "mlops-keras3" else "2"
    assert any(line.startswith(f"keras {major}.") for line in lines), lines[-5:]
    metrics = json.loads((spec.trial_dir / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [1, 2, 3, 4]
    assert metrics["value"] > 0.8, metrics


def test_files_the_trial_writes_belong_to_the_user_it_ran_as_and_the_host_can_delete_them(
    docker_runtime, tmp_path
):
    runtime = docker_runtime(tmp_path / "ws")
    spec = spec_for(
        tmp_path, "owner", "import os\nopen('accuracy.txt', 'w').write('0.9')\nprint(os.getuid())\n"
    )
    handle = runtime.run(spec)
    lines = list(runtime.logs(handle))
    outcome = runtime.wait(handle)
    runtime.remove(handle)
    assert outcome.ok, lines
    uid = next(int(line) for line in lines if line.isdigit())
    assert uid == (os.getuid() or 1000)  # the host's user; never root (the images' user when we are root)
    written = spec.trial_dir / "work" / "accuracy.txt"
    assert written.stat().st_uid == uid and (spec.trial_dir / "metrics.json").stat().st_uid == uid
    shutil.rmtree(spec.trial_dir)
    assert not spec.trial_dir.exists()


def test_a_build_that_fails_says_so_with_the_last_lines_of_its_log(docker_images, tmp_path):
    runtime = DockerRuntime.from_env(tmp_path)
    (tmp_path / "broken.Dockerfile").write_text(
        "FROM python:3.11-slim\nRUN echo fetching the wheels && echo no such package >&2 && exit 3\n"
    )
    with pytest.raises(RuntimeUnavailable) as caught:
        runtime.build_context(tmp_path, "broken.Dockerfile", "mlops-broken:test", say=lambda _: None)
    message = str(caught.value)
    assert message.startswith("building mlops-broken:test failed: The command")
    assert "returned a non-zero code: 3" in message and "fetching the wheels" in message
    assert not runtime.image_present("mlops-broken:test")


def test_images_are_built_once_and_resolved_to_the_tag_of_this_checkout(docker_images, tmp_path):
    runtime = DockerRuntime.from_env(tmp_path)
    steps = []
    tags = runtime.build_all(say=steps.append)
    assert tags == {name: images.tag(name) for name in map(str, images.buildable())}
    assert steps == []  # all up to date: no build step ran
    assert runtime.resolve("mlops-sklearn") == docker_images["mlops-sklearn"]
    latest = runtime.client.images.get("mlops-sklearn:latest").id
    assert latest == runtime.client.images.get(tags["mlops-sklearn"]).id


def test_a_trial_the_engine_refuses_is_a_launch_error_and_leaves_no_container(docker_runtime, tmp_path):
    runtime = docker_runtime(tmp_path / "ws")
    spec = spec_for(tmp_path, "tiny", "print('never')\n", memory_mb=1)
    with pytest.raises(TrialLaunchError, match=r"trial tiny/0 could not start: .*[Mm]emory"):
        runtime.run(spec)
    assert runtime.containers() == []


def test_the_setup_script_leaves_a_running_engine_and_a_present_base_image_alone():
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "docker-setup.sh")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "answers" in done.stdout and "base image python:3.11-slim is present" in done.stdout
    assert "starting dockerd" not in done.stdout and "building" not in done.stdout


def test_a_trial_that_asks_for_a_gpu_on_an_engine_without_one_is_a_clear_launch_error(
    docker_runtime, tmp_path
):
    from dataclasses import replace

    runtime = docker_runtime(tmp_path / "ws")
    spec = replace(trial_spec(tmp_path, "gpu", "print(1)\n"), gpus=1)
    with pytest.raises(TrialLaunchError, match=r"asks for 1 GPU\(s\) and this engine has none it can give"):
        runtime.run(spec)
    assert runtime.containers() == []  # nothing left behind
