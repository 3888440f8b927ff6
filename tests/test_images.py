"""The Dockerfiles and image tags, read without an engine: layering, pins, user, caches, tags."""

from __future__ import annotations

import re
import shutil

import pytest
from dockerfile_parse import DockerfileParser

from mlops import images
from mlops.domain import Image
from mlops.errors import RuntimeUnavailable
from tests.support.repos import ROOT

DOCKERFILES = sorted(images.DOCKERFILES.glob("*.Dockerfile"))


def parsed(path):
    return DockerfileParser(str(path), env_replace=True)


def pins(text: str) -> dict[str, str]:
    return {
        name.lower(): version for name, version in re.findall(r"([A-Za-z0-9_.-]+)==([0-9][^\s\"']*)", text)
    }


def test_every_buildable_image_is_a_domain_image_with_its_own_dockerfile():
    assert {p.name for p in DOCKERFILES} == {
        f"{str(i).removeprefix('mlops-')}.Dockerfile" for i in images.buildable(gpu=True)
    }
    assert {Image.KERAS3, Image.KERAS2, Image.SKLEARN} <= set(images.buildable())


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.stem)
def test_the_harness_is_the_entry_point_and_the_last_layer_so_a_change_to_it_rebuilds_in_seconds(path):
    steps = [s for s in parsed(path).structure if s["instruction"] != "COMMENT"]
    layers = [s for s in steps if s["instruction"] in ("RUN", "COPY", "ADD")]
    assert layers[-1]["instruction"] == "COPY" and layers[-1]["value"].split()[0] == "mlops_harness/"
    assert sum("harness" in s["value"] for s in layers) == 1  # nothing else of ours is in the image
    entry = [s["value"] for s in steps if s["instruction"] == "ENTRYPOINT"]
    assert entry == ['["python", "/opt/mlops/mlops_harness"]']


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.stem)
def test_the_image_runs_as_a_non_root_user_with_caches_in_one_volume_and_no_pip_cache(path):
    dockerfile = parsed(path)
    assert dockerfile.baseimage == "python:3.11-slim"
    users = [s["value"] for s in dockerfile.structure if s["instruction"] == "USER"]
    assert users and users[-1] not in ("root", "0", "0:0")
    envs = dockerfile.envs
    assert envs["MPLBACKEND"] == "Agg" and envs["PIP_NO_CACHE_DIR"] == "1"
    caches = {k: v for k, v in envs.items() if k in ("KERAS_HOME", "SCIKIT_LEARN_DATA", "TORCH_HOME")}
    assert caches and all(v.startswith("/cache/") for v in caches.values())
    # The CA bundle and the mirror are the setup script's business, never the Dockerfiles'.
    assert "http" not in path.read_text() and "PIP_CERT" not in path.read_text()


def test_every_package_installed_is_pinned():
    for path in DOCKERFILES:
        for step in parsed(path).structure:
            if step["instruction"] == "RUN" and "pip install" in step["value"]:
                args = step["value"].split("pip install", 1)[1].split("&&")[0].split()
                unpinned = [a for a in args if not a.startswith("-") and "==" not in a]
                assert unpinned == [], f"{path.name}: {unpinned}"


def test_the_keras3_image_trains_with_the_versions_the_pipeline_is_pinned_to():
    image = pins((images.DOCKERFILES / "keras3.Dockerfile").read_text())
    project = pins((ROOT / "requirements.txt").read_text())
    shared = sorted(set(image) & set(project))
    assert {"tensorflow-cpu", "keras", "scikit-learn"} <= set(shared)
    assert {n: image[n] for n in shared} == {n: project[n] for n in shared}


def test_the_keras2_image_is_the_last_tensorflow_with_keras_2():
    image = pins((images.DOCKERFILES / "keras2.Dockerfile").read_text())
    assert image["tensorflow-cpu"] == "2.15.1" and "keras" not in image


def test_a_tag_names_its_inputs(tmp_path):
    dockerfile, harness = tmp_path / "x.Dockerfile", tmp_path / "harness.py"
    dockerfile.write_text("FROM python:3.11-slim\nRUN pip install numpy==2.4.6\n")
    harness.write_text("print('harness')\n")
    first = images.hash_files(dockerfile, harness)
    assert images.hash_files(dockerfile, harness) == first
    harness.write_text("print('harness, changed')\n")
    second = images.hash_files(dockerfile, harness)
    dockerfile.write_text("FROM python:3.11-slim\nRUN pip install numpy==2.4.5\n")
    assert len({first, second, images.hash_files(dockerfile, harness)}) == 3
    assert images.tag(Image.SKLEARN) == f"mlops-sklearn:{images.content_hash(Image.SKLEARN)}"


def test_an_image_without_a_dockerfile_is_a_clear_error():
    with pytest.raises(
        RuntimeUnavailable, match=r"dockerfiles/jax\.Dockerfile is missing; there are: .*pytorch"
    ):
        images.tag("mlops-jax")


def test_a_tag_follows_every_source_file_of_the_harness_package(tmp_path, monkeypatch):
    package = tmp_path / "mlops_harness"
    shutil.copytree(images.HARNESS, package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(images, "HARNESS", package)
    seen = {images.content_hash(Image.SKLEARN)}
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "runner.cpython-311.pyc").write_bytes(b"compiled")
    assert images.content_hash(Image.SKLEARN) in seen  # not copied into the image, so not in its tag
    for name in ("protocol.py", "keras_hooks.py", "__main__.py"):
        with (package / name).open("a") as fh:
            fh.write("# changed\n")
        seen.add(images.content_hash(Image.SKLEARN))
    assert len(seen) == 4


def test_the_build_context_holds_only_the_harness_sources():
    from docker.utils.build import exclude_paths

    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sent = exclude_paths(str(ROOT), patterns, dockerfile="dockerfiles/sklearn.Dockerfile")
    ours = {p for p in sent if p.startswith("mlops_harness/")}
    assert ours == {f"mlops_harness/{p.name}" for p in images.harness_files()}
    assert sent - ours <= {".dockerignore", "dockerfiles/sklearn.Dockerfile"}


def test_a_trial_given_gpus_runs_the_cuda_variant_of_keras_and_the_variant_is_built_only_when_named():
    assert images.for_gpus("mlops-keras3", 1) == "mlops-keras3-gpu"
    assert images.for_gpus("mlops-keras3", 0) == "mlops-keras3"
    assert images.for_gpus("mlops-sklearn", 2) == "mlops-sklearn"  # scikit-learn runs on the CPU anyway
    assert Image.KERAS3_GPU not in images.buildable() and Image.KERAS3_GPU in images.buildable(gpu=True)
    assert images.dockerfile(Image.KERAS3_GPU).name == "keras3-gpu.Dockerfile"


def test_pytorch_has_its_image_and_a_gpu_variant_that_shares_its_install_layers():
    assert images.for_gpus("mlops-pytorch", 1) == "mlops-pytorch-gpu"
    assert Image.PYTORCH in images.buildable() and Image.PYTORCH_GPU not in images.buildable()
    cpu, gpu = (images.dockerfile(i).read_text() for i in (Image.PYTORCH, Image.PYTORCH_GPU))

    def install(text: str) -> list[str]:  # the lines up to the pip install: the engine's cached layers
        lines = [line for line in text.splitlines() if not line.startswith("#")]
        return lines[: next(i for i, line in enumerate(lines) if "useradd" in line)]

    assert install(cpu) == install(gpu) and "torch==" in "".join(install(cpu))
