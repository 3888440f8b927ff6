"""Data sets offline and once: ``mlops datasets import`` and ``list``, what every trial sees of them, the
``download`` failure that names the import line, and a script that downloads MNIST under its own cache
name trained offline on both runtimes, twice, without fetching anything."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
import urllib.error
from pathlib import Path

import pytest

from jobs.cli import main
from mlops.runtime.local import LocalRuntime
from mlops_harness import datasets as harness_datasets
from mlops_harness.failures import classify
from mlops_harness.protocol import ENV_DATASETS, ENV_IMPORT_WORKSPACE, FailureClass, file_sha256
from tests.support.corpus import train_as_pushed
from tests.support.datasets import digits_as_mnist
from tests.support.trials import trial_spec


def mlops(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def stored(workspace: Path) -> list[str]:
    """Every file of the store but its lock: what an import left behind."""
    store = workspace / "datasets"
    return sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.is_file() and p.name != ".lock")


def test_import_puts_the_file_under_the_name_the_script_asks_for_and_list_shows_it(tmp_path, capsys):
    ws = tmp_path / "ws"
    npz = digits_as_mnist(tmp_path / "mnist.npz")
    code, out, _ = mlops(
        capsys, "datasets", "import", str(npz), "--as", "mnist_local_copy.npz", "--workspace", str(ws)
    )
    assert code == 0 and "imported: keras data set mnist_local_copy.npz" in out
    assert "$KERAS_HOME/datasets/mnist_local_copy.npz" in out
    copy = ws / "datasets" / "keras" / "mnist_local_copy.npz"
    assert copy.read_bytes() == npz.read_bytes() and oct(copy.stat().st_mode & 0o777) == "0o444"
    csv = tmp_path / "heart.csv"
    csv.write_text("age,target\n63,1\n")
    assert mlops(capsys, "datasets", "import", str(csv), "--kind", "sklearn", "--workspace", str(ws))[0] == 0
    code, out, _ = mlops(capsys, "datasets", "list", "--workspace", str(ws))
    sha = file_sha256(npz)
    assert code == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:]}
    assert (
        rows["mnist_local_copy.npz"][1:3] == ["keras", "102.8"] and sha[:12] in rows["mnist_local_copy.npz"]
    )
    assert rows["heart.csv"][1] == "sklearn" and "$SCIKIT_LEARN_DATA/heart.csv" in rows["heart.csv"]
    assert all(r[5].startswith("20") and r[5].endswith("Z") for r in rows.values())  # when it was imported
    # Importing the same content again changes nothing, and says so.
    code, out, _ = mlops(
        capsys, "datasets", "import", str(npz), "--as", "mnist_local_copy.npz", "--workspace", str(ws)
    )
    assert code == 0 and "already imported (same content)" in out


def test_a_file_that_is_not_there_or_not_a_file_is_refused_and_nothing_is_written(tmp_path, capsys):
    ws = tmp_path / "ws"
    code, _, err = mlops(capsys, "datasets", "import", str(tmp_path / "mnist.npz"), "--workspace", str(ws))
    assert code == 2 and err.strip() == f"mlops: error: {tmp_path / 'mnist.npz'}: no such file"
    code, _, err = mlops(capsys, "datasets", "import", str(tmp_path), "--workspace", str(ws))
    assert code == 2 and f"{tmp_path}: not a file" in err
    assert not (ws / "datasets").exists() or stored(ws) == []
    code, _, err = mlops(capsys, "datasets", "import", "--workspace", str(ws))
    assert code == 2 and "needs the files to import" in err


def truncated(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def test_a_corrupt_archive_is_refused_at_import_naming_the_file_and_why(tmp_path, capsys):
    ws = tmp_path / "ws"
    good = digits_as_mnist(tmp_path / "mnist.npz")
    assert mlops(capsys, "datasets", "import", str(good), "--workspace", str(ws))[0] == 0
    before = stored(ws), (ws / "datasets" / "index.json").read_text()
    bad_npz = truncated(digits_as_mnist(tmp_path / "cut.npz"))
    code, _, err = mlops(
        capsys, "datasets", "import", str(bad_npz), "--as", "mnist.npz", "--replace", "--workspace", str(ws)
    )
    assert (
        code == 2
        and f"{bad_npz}: refused, it is not a readable .npz file" in err
        and "nothing was imported" in err
    )
    tar = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(tar, "w:gz") as archive:
        payload = os.urandom(200_000)
        info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))
    truncated(tar)
    code, _, err = mlops(capsys, "datasets", "import", str(tar), "--workspace", str(ws))
    assert code == 2 and f"{tar}: refused" in err
    gz = tmp_path / "covtype.data.gz"
    gz.write_bytes(gzip.compress(os.urandom(100_000)))
    truncated(gz)
    code, _, err = mlops(capsys, "datasets", "import", str(gz), "--kind", "sklearn", "--workspace", str(ws))
    assert code == 2 and f"{gz}: refused, it is not a readable .gz file" in err
    # The good copy is as it was; no half-written file is left beside it.
    assert (stored(ws), (ws / "datasets" / "index.json").read_text()) == before
    assert (ws / "datasets" / "keras" / "mnist.npz").read_bytes() == good.read_bytes()


def test_the_same_name_with_other_content_needs_replace(tmp_path, capsys):
    ws = tmp_path / "ws"
    first = digits_as_mnist(tmp_path / "mnist.npz")
    other = tmp_path / "other" / "mnist.npz"
    other.parent.mkdir()
    import numpy as np

    np.savez(other, x_train=np.zeros((2, 28, 28), dtype="uint8"))
    assert mlops(capsys, "datasets", "import", str(first), "--workspace", str(ws))[0] == 0
    killed = ws / "datasets" / ".import-killed"  # the copy of an import killed halfway
    killed.write_bytes(b"half")
    code, _, err = mlops(capsys, "datasets", "import", str(other), "--workspace", str(ws))
    assert code == 2 and not killed.exists()
    assert "keras data set mnist.npz is already imported with other content" in err
    assert file_sha256(first)[:12] in err and file_sha256(other)[:12] in err and "--replace" in err
    assert (ws / "datasets" / "keras" / "mnist.npz").read_bytes() == first.read_bytes()
    code, out, _ = mlops(capsys, "datasets", "import", str(other), "--replace", "--workspace", str(ws))
    assert code == 0 and (ws / "datasets" / "keras" / "mnist.npz").read_bytes() == other.read_bytes()
    listed = json.loads((ws / "datasets" / "index.json").read_text())
    assert [d["sha256"] for d in listed] == [file_sha256(other)]
    for name in ("../mnist.npz", "/tmp/mnist.npz", ".hidden.npz"):
        code, _, err = mlops(capsys, "datasets", "import", str(first), "--as", name, "--workspace", str(ws))
        assert code == 2 and repr(name) in err, name


def test_the_harness_links_each_imported_file_where_its_library_looks(tmp_path):
    store, cache = tmp_path / "store", tmp_path / "cache"
    (store / "keras").mkdir(parents=True)
    (store / "keras" / "mnist_local_copy.npz").write_bytes(b"imported")
    (store / "sklearn" / "openml" / "openml.org").mkdir(parents=True)
    (store / "sklearn" / "openml" / "openml.org" / "61.gz").write_bytes(b"iris")
    keras_datasets = cache / "keras" / "datasets"
    keras_datasets.mkdir(parents=True)
    (keras_datasets / "mnist_local_copy.npz").write_bytes(b"half a download")  # an earlier trial's
    (keras_datasets / "gone.npz").symlink_to(store / "keras" / "gone.npz")  # a data set no longer there
    (keras_datasets / "own.npz").write_bytes(b"downloaded by the repository's trials")
    env = {
        ENV_DATASETS: str(store),
        "KERAS_HOME": str(cache / "keras"),
        "SCIKIT_LEARN_DATA": str(cache / "scikit_learn_data"),
    }
    linked = harness_datasets.link_imported(env)
    assert sorted(linked) == ["mnist_local_copy.npz", "openml/openml.org/61.gz"]
    assert (keras_datasets / "mnist_local_copy.npz").read_bytes() == b"imported"  # the import wins
    assert (cache / "scikit_learn_data" / "openml" / "openml.org" / "61.gz").read_bytes() == b"iris"
    assert not (keras_datasets / "gone.npz").is_symlink()
    assert (keras_datasets / "own.npz").read_bytes() == b"downloaded by the repository's trials"
    assert harness_datasets.link_imported(env) == linked  # the next trial: the same links, nothing else
    assert harness_datasets.link_imported({"KERAS_HOME": str(cache / "keras")}) == []  # nothing imported


def get_file(fname: str, origin: str, cache: str) -> None:
    """Keras's get_file as far as a failure goes: the file it would write, the URL it could not fetch."""
    download_target = os.path.join(cache, "datasets", fname)
    raise Exception(f"URL fetch failure on {origin}: None -- [Errno -3] Temporary failure in name resolution")  # noqa: TRY002
    return download_target  # type: ignore[unreachable]


def fetch_remote(dirname: str, url: str) -> None:
    """scikit-learn's _fetch_remote as far as a failure goes."""
    file_path = os.path.join(dirname, "covtype.data.gz")
    raise urllib.error.URLError(f"[Errno 111] Connection refused: {url} -> {file_path}")


def test_a_failed_download_names_the_url_and_the_import_line_that_fixes_it(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path / "sk"))
    url = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"

    def failure(fname: str, cache: Path):  # noqa: ANN202
        try:
            get_file(fname, url, str(cache))
        except Exception as e:  # noqa: BLE001
            return classify(e, tmp_path, tmp_path / "train.py", "train.py", 18)
        raise AssertionError("nothing was raised")

    got = failure("mnist_local_copy.npz", tmp_path / "keras")
    assert got.cls is FailureClass.DOWNLOAD
    assert f"could not download {url} (train.py:18)" in got.hint
    assert "`mlops datasets import mnist.npz --as mnist_local_copy.npz`" in got.hint
    assert "`mlops datasets import mnist.npz`" in failure("mnist.npz", tmp_path / "keras").hint
    assert "`mlops datasets import mnist.npz --as my.npz`" in failure("my.npz", Path("/tmp/.keras")).hint
    try:
        fetch_remote(str(tmp_path / "sk" / "covertype"), "https://ndownloader.figshare.com/files/5976039")
    except OSError as e:
        sk = classify(e, tmp_path, tmp_path / "train.py", "train.py", 3).hint
    assert "`mlops datasets import 5976039 --as covertype/covtype.data.gz --kind sklearn`" in sk
    # Trials of a workspace that is not the default: the line names it, quoted for the shell.
    monkeypatch.setenv(ENV_IMPORT_WORKSPACE, "/srv/ml data/ws")
    named = failure("mnist.npz", tmp_path / "keras").hint
    assert "`mlops datasets import mnist.npz --workspace '/srv/ml data/ws'`" in named


def test_real_keras_get_file_failing_and_an_imported_file_with_another_hash(tmp_path, monkeypatch):
    from keras.src.utils import file_utils

    keras_home = str(tmp_path / "keras")  # Keras reads KERAS_HOME once, when it is first imported
    monkeypatch.setenv("KERAS_HOME", keras_home)
    origin = "http://127.0.0.1:9/tf-keras-datasets/mnist.npz"  # nothing listens on port 9: refused at once
    with pytest.raises(Exception, match="URL fetch failure") as raised:
        file_utils.get_file("mnist_local_copy.npz", origin, file_hash="0" * 64, cache_dir=keras_home)
    got = classify(raised.value, tmp_path, tmp_path / "train.py", "train.py", 18)
    assert (
        got.cls is FailureClass.DOWNLOAD
        and "`mlops datasets import mnist.npz --as mnist_local_copy.npz`" in got.hint
    )
    # Imported: the file is used although its hash is not the one Keras knows, and nothing is fetched.
    store = tmp_path / "store"
    (store / "keras").mkdir(parents=True)
    digits_as_mnist(store / "keras" / "mnist_local_copy.npz")
    monkeypatch.setenv(ENV_DATASETS, str(store))
    harness_datasets.link_imported(os.environ)
    for name in ("validate_file", "get_file"):  # put back afterwards
        monkeypatch.setattr(file_utils, name, getattr(file_utils, name))
    harness_datasets.keras_get_file(file_utils)
    path = file_utils.get_file("mnist_local_copy.npz", origin, file_hash="0" * 64)  # in $KERAS_HOME
    assert path == os.path.join(keras_home, "datasets", "mnist_local_copy.npz")
    assert os.path.realpath(path) == str(store / "keras" / "mnist_local_copy.npz")
    assert not file_utils.validate_file(__file__, "0" * 64)  # any other file is checked as before


SEES = """
    import os
    home = os.environ["SCIKIT_LEARN_DATA"]
    rows = open(os.path.join(home, "heart.csv")).read().splitlines()
    refused = []
    for path in (os.path.join(home, "heart.csv"), os.path.join(os.environ["MLOPS_DATASETS"], "sklearn", "x.csv")):
        try:  # os.open: the harness's open() would write a file it cannot into the work folder instead
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT))
        except OSError as e:
            refused.append(type(e).__name__)
    print("refused", refused)
    open("accuracy.txt", "w").write(str(0.5 + 0.1 * len(refused) + 0.01 * len(rows)))
"""


@pytest.mark.parametrize("runtime_name", ["local", pytest.param("docker", marks=pytest.mark.docker)])
def test_every_trial_reads_the_imported_data_sets_and_cannot_change_them(
    tmp_path, runtime_name, request, capsys
):
    spec = trial_spec(tmp_path, "sees", SEES)
    ws = tmp_path / "ws"
    csv = tmp_path / "heart.csv"
    csv.write_text("age,target\n63,1\n")
    assert mlops(capsys, "datasets", "import", str(csv), "--kind", "sklearn", "--workspace", str(ws))[0] == 0
    runtime = LocalRuntime(ws) if runtime_name == "local" else request.getfixturevalue("docker_runtime")(ws)
    handle = runtime.run(spec)
    log = "\n".join(runtime.logs(handle))
    outcome = runtime.wait(handle)
    runtime.remove(handle)
    assert outcome.ok, log
    # Two lines read through the link in its cache, both writes refused: 0.5 + 0.2 + 0.02.
    assert json.loads((spec.trial_dir / "metrics.json").read_text())["value"] == pytest.approx(0.72), log
    assert csv.read_text() == (ws / "datasets" / "sklearn" / "heart.csv").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["local", pytest.param("docker", marks=pytest.mark.docker)])
def test_mnist_under_its_own_cache_name_trains_offline_from_the_import_and_downloads_nothing(
    runtime, tmp_path, request, capsys
):
    if runtime == "docker":
        request.getfixturevalue("docker_images")
    ws = tmp_path / "ws"
    npz = digits_as_mnist(tmp_path / "mnist.npz")
    args = ["datasets", "import", str(npz), "--as", "mnist_local_copy.npz", "--workspace", str(ws)]
    assert mlops(capsys, *args)[0] == 0
    # No network: a download would fail the trial. Two trials: the second reads the same file again.
    got = train_as_pushed(
        "mnist_custom_cache_name", tmp_path, ws, runtime, network=False, max_trials=2, target=0.999
    )
    assert got.metric is not None and got.metric >= 0.7, got.log
    assert got.trials == 2 and got.run_dir is not None
    for trial in ("0", "1"):
        folder = got.run_dir / "trials" / trial
        log = (folder / "log.txt").read_text()
        assert json.loads((folder / "metrics.json").read_text())["value"] >= 0.7, log
        assert "imported data sets in the cache: mnist_local_copy.npz" in log
        assert "using the imported data set mnist_local_copy.npz" in log
        assert "Downloading data from" not in log
    assert file_sha256(ws / "datasets" / "keras" / "mnist_local_copy.npz") == file_sha256(npz)


GET_FILE = """
    import numpy as np
    from tensorflow import keras
    path = keras.utils.get_file(
        "mnist_local_copy.npz", "http://127.0.0.1:9/mnist.npz", file_hash="0" * 64, cache_subdir="datasets"
    )
    with np.load(path) as data:
        print("read", len(data["x_train"]), "images from", path)
        open("accuracy.txt", "w").write(str(len(data["x_test"]) / 1000))
"""


@pytest.mark.docker
@pytest.mark.parametrize("image", ["mlops-keras3", "mlops-keras2"])
def test_keras_of_either_generation_reads_an_imported_file_keras_does_not_know(
    tmp_path, image, docker_runtime, capsys
):
    ws = tmp_path / "ws"
    npz = digits_as_mnist(tmp_path / "mnist.npz")
    assert (
        mlops(capsys, "datasets", "import", str(npz), "--as", "mnist_local_copy.npz", "--workspace", str(ws))[
            0
        ]
        == 0
    )
    spec = trial_spec(tmp_path, "get_file", GET_FILE, image=image, network=False)
    runtime = docker_runtime(ws)
    handle = runtime.run(spec)
    log = "\n".join(runtime.logs(handle))
    outcome = runtime.wait(handle)
    runtime.remove(handle)
    assert outcome.ok, log
    assert "read 1500 images from /cache/keras/datasets/mnist_local_copy.npz" in log
    assert "using the imported data set mnist_local_copy.npz, whose hash is not the one Keras knows" in log
    assert json.loads((spec.trial_dir / "metrics.json").read_text())["value"] == pytest.approx(0.297)
