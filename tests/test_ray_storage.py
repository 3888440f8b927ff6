"""The checkpoints of a Ray trial mirrored in storage (mlops/runtime/ray_storage.py), through pyarrow.fs on
a file:// URI (the code path of s3://, which was not run here), without a cluster: what goes up, what is
dropped, what comes back, and a URI pyarrow cannot open."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlops.errors import ConfigError
from mlops.runtime.ray_storage import CheckpointSync, open_storage


def _checkpoint(folder: Path, epoch: int) -> Path:
    ckpt = folder / "fit-0" / f"ckpt-{epoch:06d}-000000"
    ckpt.mkdir(parents=True)
    (ckpt / "model.weights.h5").write_bytes(b"w" * (100 + epoch))
    (ckpt / "meta.json").write_text(json.dumps({"epoch": epoch}))
    return ckpt


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_checkpoints_go_up_are_dropped_with_the_folder_and_come_back(tmp_path: Path) -> None:
    store, local = tmp_path / "store", tmp_path / "trial" / "checkpoints"
    sync = CheckpointSync(f"file://{store}", "mlops-abc/1-x/0", local)
    assert sync.check() is None
    first = _checkpoint(local, 1)
    (local / "fit-0" / ".tmp-ckpt-000002-000000").mkdir()  # one being written: never sent
    (local / "fit-0" / ".tmp-ckpt-000002-000000" / "model.weights.h5").write_bytes(b"half")
    sync.push()
    remote = store / "mlops-abc" / "1-x" / "0"
    assert _files(remote) == {
        "fit-0/ckpt-000001-000000/model.weights.h5",
        "fit-0/ckpt-000001-000000/meta.json",
    }
    _checkpoint(local, 2)
    for path in first.iterdir():  # the harness keeps the last ones only
        path.unlink()
    first.rmdir()
    sync.push()
    assert _files(remote) == {
        "fit-0/ckpt-000002-000000/model.weights.h5",
        "fit-0/ckpt-000002-000000/meta.json",
    }
    assert not (remote / "fit-0" / "ckpt-000001-000000").exists()

    elsewhere = tmp_path / "other-node" / "checkpoints"  # a node that never saw the trial folder
    again = CheckpointSync(f"file://{store}", "mlops-abc/1-x/0", elsewhere)
    assert again.restore() == 2
    assert _files(elsewhere) == _files(remote)
    assert (elsewhere / "fit-0/ckpt-000002-000000/model.weights.h5").read_bytes() == b"w" * 102
    again.push()  # what it restored is not sent back
    assert again.restore() == 0

    again.finish(clear=True)  # the trial succeeded: storage keeps nothing of it
    assert not remote.exists()


def test_a_plain_folder_is_storage_too_and_a_bad_uri_names_the_setting(tmp_path: Path) -> None:
    fs, base = open_storage(str(tmp_path / "shared"))
    assert base == str(tmp_path / "shared") and fs.type_name == "local"
    with pytest.raises(ConfigError, match="setting storage: cannot use 'nosuch://bucket/x'"):
        open_storage("nosuch://bucket/x")
    with pytest.raises(ConfigError, match="a URI with a password is refused") as caught:
        open_storage("s3://AKIAX:s3cr3t@bucket/prefix")
    assert "s3cr3t" not in str(caught.value)
