"""``tune_file:``: the lines of a file of hyperparameters that a script reads (the classic setup's
``input.txt``) are tuned like the answers to its input() prompts. Read and refused by mlops.yaml's reader
(fast); each trial's own copy (fast); end to end on both runtimes with the corpus repository
``classic_input_txt_absolute``, which starts below the target and reaches it only through the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlops.domain import Kind, TrialStatus
from mlops.errors import SourceError
from mlops.hyperparams import Role
from mlops.project import DataPath, read_project
from mlops.runtime.base import TrialSpec
from tests.support.corpus import CORPUS, as_git_repo, refused_before_any_run
from tests.support.processes import run_cli
from tests.support.repos import git
from tweak.facts import model_facts
from tweak.files import copy_of, lines_as_prompts, with_copies, write_copies
from tweak.strategies import TPE, Ladder, Past, SearchState

REPO = "classic_input_txt_absolute"


def _repo(root: Path, config: str, values: str = "2\n1\n") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "mlops.yaml").write_text(config)
    (root / "train.py").write_text("x = 1\n")
    (root / "input.txt").write_text(values)
    return root


# -- reading ----------------------------------------------------------------------------------------


def test_a_file_mapped_by_data_is_named_by_the_repository_path_or_by_the_script_s(tmp_path: Path) -> None:
    root = _repo(
        tmp_path / "r",
        "data:\n  /root/mlopsws/input.txt: input.txt\ntune_file:\n  input.txt: [max_depth, n_estimators]\n",
    )
    (file,) = read_project(root).tune_file
    assert (file.key, file.target, file.in_repo) == ("input.txt", "/root/mlopsws/input.txt", None)
    assert file.lines == ("2", "1") and file.source == str((root / "input.txt").resolve())
    assert [(i, role) for i, _, role in file.roles()] == [(0, Role.DEPTH), (1, Role.ESTIMATORS)]
    (root / "mlops.yaml").write_text(
        "data:\n  /root/mlopsws/input.txt: input.txt\ntune_file:\n  /root/mlopsws/input.txt: [~, trees]\n"
    )
    (file,) = read_project(root).tune_file
    assert (file.target, file.roles()) == ("/root/mlopsws/input.txt", [(1, "trees", Role.ESTIMATORS)])


def test_a_file_the_script_reads_relatively_needs_no_data_entry(tmp_path: Path) -> None:
    root = _repo(tmp_path / "r", "tune_file:\n  input.txt: [depth, number of trees]\n")
    (file,) = read_project(root).tune_file
    assert (file.target, file.in_repo) == (None, "input.txt")


@pytest.mark.parametrize(
    ("config", "values", "message"),
    [
        (
            "tune_file:\n  /root/mlopsws/input.txt: [epochs]\n",
            "3\n",
            "mlops.yaml: tune_file: /root/mlopsws/input.txt: no such file: name a file of the repository, or the "
            "path the script uses and map it with data: in mlops.yaml",
        ),
        ("tune_file:\n  params.txt: [epochs]\n", "3\n", "mlops.yaml: tune_file: params.txt: no such file"),
        (
            "tune_file:\n  input.txt: [max_depth, n_estimators, epochs]\n",
            "2\n1\n",
            "mlops.yaml: tune_file: input.txt: 3 names but the file has 2 line(s)",
        ),
        (
            "tune_file:\n  input.txt: [max_depth, n_estimators]\n",
            "2\nmany\n",
            "mlops.yaml: tune_file: input.txt: line 2 ('many') is not a number, so n_estimators cannot be tuned",
        ),
        (
            "tune_file:\n  input.txt: [max_depth, colour]\n",
            "2\n1\n",
            "mlops.yaml: tune_file: input.txt: line 2 is named 'colour', which is no hyperparameter mlops tunes",
        ),
        ("tune_file:\n  input.txt: [~]\n", "2\n", "mlops.yaml: tune_file: input.txt: no line is named"),
        ("tune_file: [input.txt]\n", "2\n", "mlops.yaml: tune_file: must map each file to the names"),
    ],
)
def test_a_bad_tune_file_is_refused_naming_mlops_yaml_and_the_line(
    tmp_path: Path, config: str, values: str, message: str
) -> None:
    root = _repo(tmp_path / "r", config, values)
    with pytest.raises(SourceError) as caught:
        read_project(root)
    assert str(caught.value).startswith(message), caught.value


def test_a_bad_tune_file_stops_the_run_before_any_trial(tmp_path: Path) -> None:
    repo = as_git_repo(REPO, tmp_path)
    (repo / "input.txt").write_text("2\nall of them\n")
    git(repo, "commit", "-qam", "a line that is no number")
    match = r"mlops.yaml: tune_file: input.txt: line 2 \('all of them'\)"
    refused_before_any_run(repo, tmp_path / "ws", match)


# -- each trial's copy ------------------------------------------------------------------------------


def test_each_trial_reads_its_own_copy_and_the_file_as_pushed_is_left_alone(tmp_path: Path) -> None:
    root = _repo(
        tmp_path / "r",
        "data:\n  /root/mlopsws/input.txt: input.txt\ntune_file:\n  input.txt: [max_depth, n_estimators]\n",
        "2\n1\n# kept\n",
    )
    files = read_project(root).tune_file
    pushed = read_project(root).data
    trial = tmp_path / "trials" / "3"
    write_copies(trial, files, {"input.txt": {1: "100"}})
    assert copy_of(trial, 0, files[0]).read_text() == "2\n100\n# kept\n"
    assert (root / "input.txt").read_text() == "2\n1\n# kept\n"
    spec = TrialSpec("r1", 3, root, "train.py", trial / "source.py", trial, data=pushed)
    mapped = with_copies(spec, files).data
    assert mapped == (DataPath("/root/mlopsws/input.txt", str(copy_of(trial, 0, files[0]))),)

    relative = _repo(tmp_path / "rel", "tune_file:\n  input.txt: [max_depth]\n")
    files = read_project(relative).tune_file
    write_copies(trial, files, {})
    spec = TrialSpec("r1", 3, relative, "train.py", trial / "source.py", trial)
    assert with_copies(spec, files).data == (DataPath("input.txt", str(copy_of(trial, 0, files[0]))),)


def test_strategies_tune_the_file_s_lines_like_answers(tmp_path: Path) -> None:
    root = _repo(tmp_path / "r", "tune_file:\n  input.txt: [max_depth, n_estimators]\n")
    lines = lines_as_prompts(read_project(root).tune_file)
    assert [(p.key, p.label()) for p in lines] == [
        ("input.txt:1", "max_depth (input.txt line 1)"),
        ("input.txt:2", "n_estimators (input.txt line 2)"),
    ]
    source = "from sklearn.ensemble import RandomForestClassifier\nRandomForestClassifier().fit(X, y)\n"
    base = dict(
        kind=Kind.OTHER, framework="sklearn", facts=model_facts(source), target=0.8, seed=0, prompts=lines
    )
    first = TPE().propose(SearchState(**base, number=1, past=[Past(0, [], TrialStatus.SUCCEEDED, 0.2)]))
    assert first is not None
    assert first.files == {"input.txt": {0: "8", 1: "100"}} and first.inputs == {} and first.tweaks == []
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
    assert second is not None and set(second.files) == {"input.txt"}
    ladder = [Ladder().propose(SearchState(**base, number=n, past=[])) for n in (1, 2)]
    assert [p.files for p in ladder if p is not None] == [
        {"input.txt": {0: "4"}},
        {"input.txt": {0: "4", 1: "10"}},
    ]


# -- end to end -------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["local", pytest.param("docker", marks=pytest.mark.docker)])
def test_a_script_tuned_only_through_its_input_txt_reaches_the_target(tmp_path: Path, runtime: str, request):
    if runtime == "docker":
        request.getfixturevalue("docker_images")
    repo = as_git_repo(REPO, tmp_path)
    ws = tmp_path / "ws"
    done = run_cli("run", str(repo), "--runtime", runtime, "--workspace", str(ws), cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    (summary,) = [
        json.loads(line)
        for line in run_cli("history", "--json", "--workspace", str(ws), cwd=tmp_path).stdout.splitlines()
    ]
    assert summary["reached"] is True and summary["baseline_metric"] < 0.8, summary
    assert "best inputs: best.input.txt (beside best.py)" in done.stdout
    shown = json.loads(run_cli("show", summary["run"], "--json", "--workspace", str(ws), cwd=tmp_path).stdout)
    best = shown["trial_list"][summary["best_trial"]]
    assert any(c.startswith("input.txt line 1 (max_depth) 2 -> ") for c in best["changes"]), best
    run_dir = ws / "runs" / summary["run"]
    kept = (run_dir / "best.input.txt").read_text().splitlines()
    assert kept != ["2", "1"] and all(line.isdigit() for line in kept)
    assert (run_dir / "best.py").read_text() == (CORPUS / REPO / "train.py").read_text()  # the code as pushed
    assert (repo / "input.txt").read_text() == "2\n1\n"
    copies = sorted((run_dir / "trials").glob("*/files/0/input.txt"))
    assert copies[0].read_text() == "2\n1\n" and len({c.read_text() for c in copies}) == len(copies)


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["local", pytest.param("docker", marks=pytest.mark.docker)])
def test_a_file_read_relatively_is_the_trial_s_copy(tmp_path: Path, runtime: str, request):
    # The corpus's stdin_input_txt reads 'input.txt' beside it (sys.stdin = open('input.txt')), no data: entry.
    from mlops_harness.protocol import LOG_FILE

    if runtime == "docker":
        request.getfixturevalue("docker_images")
    repo = as_git_repo("stdin_input_txt", tmp_path)
    (repo / "mlops.yaml").write_text("tune_file:\n  input.txt: [max depth, number of trees]\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "its lines are tuned")
    ws = tmp_path / "ws"
    args = ["--runtime", runtime, "--workspace", str(ws), "--target", "0.9999", "--max-trials", "2"]
    done = run_cli("run", str(repo), *args, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    (trial_1,) = (ws / "runs").glob("*/trials/1")
    depth, trees = (trial_1 / "files" / "0" / "input.txt").read_text().split()
    assert (depth, trees) != ("3", "40")
    assert f"depth {depth} trees {trees} accuracy" in (trial_1 / LOG_FILE).read_text()
    assert (repo / "input.txt").read_text() == (CORPUS / "stdin_input_txt" / "input.txt").read_text()


def test_a_file_inside_a_mapped_folder_is_mounted_over_it(tmp_path: Path) -> None:
    root = tmp_path / "r"
    (root / "ws").mkdir(parents=True)
    (root / "ws" / "input.txt").write_text("2\n1\n")
    (root / "mlops.yaml").write_text(
        "data:\n  /root/mlopsws: ws\ntune_file:\n  /root/mlopsws/input.txt: [max_depth, n_estimators]\n"
    )
    project = read_project(root)
    (file,) = project.tune_file
    assert (file.target, file.source) == (
        "/root/mlopsws/input.txt",
        str((root / "ws" / "input.txt").resolve()),
    )
    trial = tmp_path / "trials" / "1"
    write_copies(trial, project.tune_file, {"/root/mlopsws/input.txt": {0: "8"}})
    spec = TrialSpec("r1", 1, root, "train.py", trial / "source.py", trial, data=project.data)
    folder, copy = with_copies(spec, project.tune_file).data  # the folder first, then the file over it
    assert folder == project.data[0] and copy == DataPath(
        "/root/mlopsws/input.txt", str(copy_of(trial, 0, file))
    )
    assert Path(copy.source).read_text() == "8\n1\n"
    (root / "mlops.yaml").write_text("data:\n  /root/mlopsws: ws\ntune_file:\n  ws/input.txt: [max_depth]\n")
    assert read_project(root).tune_file[0].target == "/root/mlopsws/input.txt"  # named by its repository path
