"""``data:``: the paths a script written for its author's machine reads, mapped to folders here. Read and
refused by mlops.yaml's reader (fast); mounted by the sandbox and Docker, rewritten in a copy of the source
unsandboxed (real trainings of the corpus repository ``train_set_absolute``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mlops.config import load_settings
from mlops.errors import ConfigError, SourceError
from mlops.layout import REWRITES as REWRITES_FILE
from mlops.ledger import Ledger
from mlops.project import DataPath, mapped_data, read_project
from mlops.runtime.data import rewrite_paths
from tests.support.corpus import refused_before_any_run, train_as_pushed

REPO = "train_set_absolute"


def _repo(root: Path, config: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "mlops.yaml").write_text(config)
    (root / "train.py").write_text("x = 1\n")
    (root / "data").mkdir(exist_ok=True)
    (root / "data" / "train.csv").write_text("a,b\n1,2\n")
    return root


# -- reading ----------------------------------------------------------------------------------------


def test_entries_are_read_only_unless_writable(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    root = _repo(
        tmp_path / "repo",
        f"data:\n  /root/train_set: data\n  ./csv/: data/train.csv\n  /newdir: {{path: {out}, writable: true}}\n",
    )
    data = read_project(root).data
    assert data == (
        DataPath("/root/train_set", str((root / "data").resolve())),
        DataPath("csv", str((root / "data" / "train.csv").resolve())),
        DataPath("/newdir", str(out.resolve()), writable=True),
    )
    assert [d.relative for d in data] == [False, True, False]


def test_the_repository_wins_over_the_site_on_the_same_path(tmp_path: Path) -> None:
    team = tmp_path / "team"
    team.mkdir()
    root = _repo(tmp_path / "repo", "data:\n  /root/train_set: data\n")
    site = (DataPath("/root/train_set", str(team)), DataPath("/mnt/fashion_mnist", str(team)))
    merged = mapped_data(root, site, tmp_path / "ws")
    assert [(d.target, d.source) for d in merged] == [
        ("/root/train_set", str((root / "data").resolve())),
        ("/mnt/fashion_mnist", str(team)),
    ]


def test_the_site_sets_data_in_mlops_toml_and_the_environment(tmp_path: Path) -> None:
    team = tmp_path / "team"
    team.mkdir()
    toml = tmp_path / "mlops.toml"
    toml.write_text(
        f'[mlops.data]\n"/mnt/fashion_mnist" = "{team}"\n"/out" = {{path = "{team}", writable = true}}\n'
    )
    settings = load_settings(config_file=toml, env={})
    assert settings.data == (DataPath("/mnt/fashion_mnist", str(team)), DataPath("/out", str(team), True))
    assert json.dumps(settings.to_json())  # recorded with the run
    from_env = load_settings(env={"MLOPS_DATA": f"{{/dataset/brain_tumor: {team}}}"}, config_file=toml)
    assert from_env.data == (DataPath("/dataset/brain_tumor", str(team)),)
    with pytest.raises(ConfigError, match="MLOPS_DATA: .*data: /d: 'rel' must be an absolute path"):
        load_settings(env={"MLOPS_DATA": "{/d: rel}"}, config_file=tmp_path / "none.toml")
    with pytest.raises(ConfigError, match=r"mlops.toml: setting data: data: /d: /gone does not exist"):
        toml.write_text('[mlops.data]\n"/d" = "/gone"\n')
        load_settings(config_file=toml, env={})


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("/root/train_set: gone", "mlops.yaml: data: /root/train_set: gone does not exist in the repository"),
        ("/root/train_set: /no/such/folder", "data: /root/train_set: /no/such/folder does not exist on this"),
        ("/root/../etc/x: data", "mlops.yaml: data: /root/../etc/x: a path with '..' is not taken"),
        ("../up: data", "mlops.yaml: data: ../up: a path with '..' is not taken"),
        ("/root/train_set: data/../data", "data: /root/train_set: a path with '..' is not taken"),
        ("/root/train_set: /", "data: /root/train_set: / would expose"),
        ("/root/train_set: /etc", "data: /root/train_set: /etc would expose /etc"),
        ("/root/train_set: /etc/ssl", "would expose /etc"),
        ("/root/train_set: /proc/self", "would expose /proc"),
        ("/root/train_set: /sys", "would expose /sys"),
        ("/root/train_set: /dev", "would expose /dev"),
        ("/usr/share/data: data", "data: /usr/share/data: a system folder cannot be replaced"),
        ("/etc: data", "data: /etc: a system folder cannot be replaced"),
        ("/: data", "data: /: a system folder cannot be replaced"),
        ("/lib: data", "a system folder cannot be replaced"),
        (".: data", "data: .: the script's own folder cannot be replaced"),
        ("/out: {path: data, writable: true}", "data: /out: a writable folder must be an absolute path"),
        ("/out: {path: data, writable: yes please}", "data: /out: 'writable' must be true or false"),
        ("/out: {path: data, mode: rw}", "data: /out: unknown key 'mode'"),
        ("/out: [data]", "data: /out: the value must be a path here"),
    ],
)
def test_a_bad_entry_is_refused_naming_mlops_yaml_and_the_entry(
    tmp_path: Path, entry: str, says: str
) -> None:
    root = _repo(tmp_path / "repo", f"data:\n  {entry}\n")
    with pytest.raises(SourceError) as e:
        read_project(root, workspace=tmp_path / "ws")
    assert says in str(e.value)
    assert str(e.value).startswith("mlops.yaml: data: ") or "mlops.yaml: 'data'" in str(e.value)


def test_data_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="mlops.yaml: 'data' must map the paths the script uses"):
        read_project(_repo(tmp_path, "data: [/root/train_set]\n"))


@pytest.mark.parametrize("socket", ["/var/run/docker.sock", "/run/docker.sock"])
def test_the_docker_socket_is_refused(tmp_path: Path, socket: str) -> None:
    source = socket if os.path.exists(socket) else os.path.dirname(socket)  # or the folder that would hold it
    with pytest.raises(SourceError, match="mlops.yaml: data: /root/x.sock: .* would expose"):
        read_project(_repo(tmp_path, f"data:\n  /root/x.sock: {source}\n"))


def test_the_workspace_and_its_ledger_are_refused(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "runs").mkdir(parents=True)
    (ws / "ledger.db").write_text("")
    for source, exposed in [(ws / "ledger.db", ws), (ws / "runs", ws), (ws, ws), (tmp_path, ws)]:
        root = _repo(tmp_path / "repo", f"data:\n  /root/train_set: {source}\n")
        with pytest.raises(
            SourceError, match=f"mlops.yaml: data: /root/train_set: .* would expose {exposed}"
        ):
            read_project(root, workspace=ws)


def test_a_checkout_inside_the_workspace_maps_its_own_folders(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    root = _repo(ws / "checkouts" / "r" / "c0ffee", "data:\n  /root/train_set: data\n")
    assert read_project(root, workspace=ws).data[0].source == str((root / "data").resolve())


def test_a_link_out_of_the_repository_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = _repo(tmp_path / "repo", "data:\n  /root/train_set: sneaky\n")
    (root / "sneaky").symlink_to(outside)
    with pytest.raises(SourceError, match="data: /root/train_set: sneaky leads out of the repository"):
        read_project(root)


def test_the_callers_credentials_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    for source in (home, home / ".ssh"):
        root = _repo(tmp_path / "repo", f"data:\n  /root/train_set: {source}\n")
        with pytest.raises(SourceError, match=r"would expose .*\.ssh"):
            read_project(root)


# -- rewriting ---------------------------------------------------------------------------------------


def test_path_literals_are_rewritten_and_nothing_else() -> None:
    before = (
        "import os\n"
        "df = pd.read_csv('/root/train_set/data.csv')\n"
        'folder = "/root/train_set"\n'
        "other = '/root/train_setting/x'\n"
        "name = f'/root/train_set/{i}.png'\n"
        "rel = open('./data/x.csv')\n"
        "key = d['data']\n"
        "raw = b'/root/train_set/x'\n"
    )
    after, done = rewrite_paths(before, {"/root/train_set": "/srv/d", "data": "/srv/rel"})
    assert after == (
        "import os\n"
        "df = pd.read_csv('/srv/d/data.csv')\n"
        "folder = '/srv/d'\n"
        "other = '/root/train_setting/x'\n"
        "name = f'/srv/d/{i}.png'\n"
        "rel = open('/srv/rel/x.csv')\n"
        "key = d['/srv/rel']\n"  # a relative path rewrites a literal equal to it: said in data_rewrites.json
        "raw = b'/root/train_set/x'\n"
    )
    assert [(r["line"], r["was"]) for r in done] == [
        (2, "/root/train_set/data.csv"),
        (3, "/root/train_set"),
        (5, "/root/train_set/"),
        (6, "./data/x.csv"),
        (7, "data"),
    ]


# -- training ----------------------------------------------------------------------------------------


def _trial0(workspace: Path, run_dir: Path):
    ledger = Ledger(workspace / "ledger.db")
    try:
        return ledger.trials(run_dir.name)[0]
    finally:
        ledger.close()


def _writable_out(tmp_path: Path) -> tuple[Path, str]:
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)  # the training runs as another user when mlops runs as root
    return out, f"{{/newdir: {{path: {out}, writable: true}}}}"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("runtime", "flags"),
    [("local", {}), ("local", {"unsandboxed": True}), pytest.param("docker", {}, marks=pytest.mark.docker)],
    ids=["sandbox", "unsandboxed", "docker"],
)
def test_the_script_reads_and_writes_the_mapped_paths(
    tmp_path: Path, runtime: str, flags: dict, request
) -> None:
    if runtime == "docker":
        request.getfixturevalue("docker_images")
    out, site = _writable_out(tmp_path)
    ws = tmp_path / "ws"
    got = train_as_pushed(REPO, tmp_path, ws, runtime, data=site, **flags)
    assert got.metric is not None and got.metric >= 0.85, got.log
    assert float((out / "out.txt").read_text()) == pytest.approx(got.metric), got.log
    assert got.run_dir is not None
    trial = _trial0(ws, got.run_dir)
    folder = got.run_dir / "trials" / "0"
    assert trial.changes == [] and trial.tweaks == []  # a rewrite is not a tuning change
    assert "/root/train_set/data.csv" in (folder / "source.py").read_text()
    if flags.get("unsandboxed"):
        said = json.loads((folder / REWRITES_FILE).read_text())
        assert [r["was"] for r in said["rewritten"]] == ["/root/train_set/data.csv", "/newdir/out.txt"]
        assert (got.run_dir / "best.py").read_text() == (folder / "source.py").read_text()
        assert (got.run_dir / "best.diff").read_text() == ""
    else:
        assert not (folder / REWRITES_FILE).exists()  # mounted where the script looks: nothing rewritten


@pytest.mark.slow
def test_without_data_trial_0_fails_in_class_data_with_the_lines_that_map_it(tmp_path: Path) -> None:
    got = train_as_pushed(REPO, tmp_path, tmp_path / "ws", "local", without=("mlops.yaml",))
    assert got.metric is None and got.failure == "data", got.log
    assert "/root/train_set/data.csv (train.py:7)" in got.reason, got.log
    assert "data:\n  /root/train_set: <folder on this machine>" in got.reason, got.log


def test_a_missing_source_stops_the_run_before_any_trial(tmp_path: Path) -> None:
    from tests.support.corpus import as_git_repo

    repo = as_git_repo(REPO, tmp_path, without=("data",))
    assert not (repo / "data").exists()
    refused_before_any_run(repo, tmp_path / "ws", "mlops.yaml: data: /root/train_set: data does not exist")


def test_the_sandbox_binds_each_folder_at_the_path_the_script_uses(tmp_path: Path) -> None:
    from mlops.runtime import sandbox

    data, out = tmp_path / "data", tmp_path / "out"
    box = sandbox.Sandbox(
        "/usr/bin/bwrap",
        (),
        (tmp_path / "trial",),
        mapped=((data, Path("/root/train_set"), False), (out, Path("/newdir"), True)),
    )
    argv = sandbox.bwrap_argv(box, ["python"])
    triples = [tuple(argv[i : i + 3]) for i in range(len(argv) - 2)]
    assert ("--ro-bind", str(data), "/root/train_set") in triples
    assert ("--bind", str(out), "/newdir") in triples
    assert (
        "--perms",
        "0755",
        "--dir",
    ) in triples and "/root" in argv  # the trial's user passes through /root


RELATIVE = """
import os
import numpy as np
from sklearn.tree import DecisionTreeClassifier

rows = np.loadtxt(os.path.join("data", "train.csv"), delimiter=",", skiprows=1)
X, y = rows[:, :-1], rows[:, -1]
print("accuracy", DecisionTreeClassifier(random_state=0).fit(X, y).score(X, y))
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "runtime", ["local", "local --unsandboxed", pytest.param("docker", marks=pytest.mark.docker)]
)
def test_a_relative_folder_that_was_never_committed_is_mapped(tmp_path: Path, runtime: str, request) -> None:
    from tests.support.processes import run_cli
    from tests.support.repos import make_repo

    if runtime == "docker":
        request.getfixturevalue("docker_images")
    data = tmp_path / "team-data"
    data.mkdir()
    (data / "train.csv").write_text("a,b,label\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(40)))
    repo = make_repo(tmp_path / "repo", {"train.py": RELATIVE, "mlops.yaml": f"data:\n  data: {data}\n"})
    ws = tmp_path / "ws"
    roots = {"MLOPS_DATA_ROOTS": str(data)}  # the machine's owner lets pushes map it
    done = run_cli("run", str(repo), "--workspace", str(ws), "--runtime", *runtime.split(), "--max-trials", "1",
                   "--target", "0.5", cwd=tmp_path, env=roots)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (folder,) = ws.glob("runs/*/trials/0")
    said = json.loads((folder / REWRITES_FILE).read_text())
    assert [(r["line"], r["was"]) for r in said["rewritten"]] == [(6, "data")]
    assert 'os.path.join("data", "train.csv")' in (folder / "source.py").read_text()
