"""Job 1 against real git repositories: local paths, URLs, refs, and what goes wrong."""

from __future__ import annotations

import pytest

from mlops.errors import PullError
from mlops.ledger import Ledger
from mlops.pull import failed_pulls, pull
from tests.support.repos import git, make_repo


@pytest.fixture
def ledger(tmp_path):
    return Ledger(tmp_path / "ws" / "ledger.db")


def test_a_local_repository_is_checked_out_at_its_commit_and_recorded(tmp_path, ledger):
    repo = make_repo(tmp_path / "r", {"train.py": "print(1)\n", "data/x.csv": "1,2\n"})
    head = git(repo, "rev-parse", "HEAD")
    checkout = pull(str(repo), None, tmp_path / "ws", ledger)
    assert checkout.commit == head
    assert checkout.author == "Ada Scientist <ada@example.com>"
    assert (checkout.root / "train.py").read_text() == "print(1)\n"
    assert not (checkout.root / ".git").exists()
    assert ledger.find_pull(checkout.source, head)["path"] == str(checkout.root)
    assert [e.kind for e in ledger.events()] == ["pull"]


def test_the_same_commit_pulled_twice_is_not_cloned_twice(tmp_path, ledger):
    repo = make_repo(tmp_path / "r", {"train.py": "print(1)\n"})
    first = pull(str(repo), None, tmp_path / "ws", ledger)
    (first.root / "marker").write_text("kept")  # would vanish if the commit were exported again
    second = pull(str(repo), None, tmp_path / "ws", ledger)
    assert second.reused and second.root == first.root and (second.root / "marker").exists()
    by_sha = pull(str(repo), first.commit, tmp_path / "ws", ledger)
    assert by_sha.reused and by_sha.root == first.root


def test_a_url_is_fetched_at_a_branch_and_new_pushes_arrive(tmp_path, ledger):
    repo = make_repo(tmp_path / "r", {"train.py": "v = 1\n"})
    git(repo, "checkout", "-q", "-b", "experiment")
    make_repo(repo, {"train.py": "v = 2\n"})
    url = f"file://{repo}"
    assert (pull(url, "main", tmp_path / "ws", ledger).root / "train.py").read_text() == "v = 1\n"
    on_branch = pull(url, "experiment", tmp_path / "ws", ledger)
    assert (on_branch.root / "train.py").read_text() == "v = 2\n"
    make_repo(repo, {"train.py": "v = 3\n"})  # a new push
    assert (pull(url, "experiment", tmp_path / "ws", ledger).root / "train.py").read_text() == "v = 3\n"


def test_a_folder_or_file_inside_a_repository_narrows_the_run(tmp_path, ledger):
    repo = make_repo(tmp_path / "r", {"models/a.py": "a\n", "models/b.py": "b\n", "README": "x"})
    folder = pull(str(repo / "models"), None, tmp_path / "ws", ledger)
    assert folder.subdir == "models" and folder.entry is None
    assert sorted(p.name for p in folder.code_dir.iterdir()) == ["a.py", "b.py"]
    single = pull(str(repo / "models" / "b.py"), None, tmp_path / "ws", ledger)
    assert single.entry == "models/b.py"


def test_uncommitted_changes_are_flagged_not_trained(tmp_path, ledger):
    repo = make_repo(tmp_path / "r", {"train.py": "v = 1\n"})
    (repo / "train.py").write_text("v = 'not committed'\n")
    checkout = pull(str(repo), None, tmp_path / "ws", ledger)
    assert checkout.dirty
    assert (checkout.root / "train.py").read_text() == "v = 1\n"


def test_not_a_git_repository_is_a_clear_error(tmp_path, ledger):
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "train.py").write_text("x")
    with pytest.raises(PullError, match="not a git repository"):
        pull(str(tmp_path / "plain"), None, tmp_path / "ws", ledger)
    with pytest.raises(PullError, match="no such file or folder"):
        pull(str(tmp_path / "missing"), None, tmp_path / "ws", ledger)


def test_an_unreachable_url_or_unknown_ref_is_a_clear_error(tmp_path, ledger):
    with pytest.raises(PullError, match=r"cannot pull http://127\.0\.0\.1:9/nothing\.git"):
        pull("http://127.0.0.1:9/nothing.git", None, tmp_path / "ws", ledger)
    repo = make_repo(tmp_path / "r", {"train.py": "x\n"})
    with pytest.raises(PullError, match="no branch, tag or commit named 'nope'"):
        pull(f"file://{repo}", "nope", tmp_path / "ws", ledger)
    # Nothing half-recorded: no pull, only each failure, which mlops history shows until a pull succeeds.
    assert [e.kind for e in ledger.events()] == ["pull-failed", "pull-failed"]
    assert [f["reason"] for f in failed_pulls(ledger)][1] == "no branch, tag or commit named 'nope'"
    pull(f"file://{repo}", "main", tmp_path / "ws", ledger)
    assert [f["source"] for f in failed_pulls(ledger)] == ["http://127.0.0.1:9/nothing.git"]


def test_the_best_source_is_committed_to_its_own_branch_without_touching_the_work_tree(tmp_path, ledger):
    from mlops.pull import commit_best

    repo = make_repo(tmp_path / "r", {"models/train.py": "EPOCHS = 1\n", "other.txt": "x\n"})
    (repo / "scratch.txt").write_text("the user's uncommitted work")
    head = git(repo, "rev-parse", "HEAD")
    sha = commit_best(
        str(repo / "models"),
        head,
        "models/train.py",
        "EPOCHS = 20\n",
        "mlops/best-1-train",
        "mlops: best model",
        tmp_path / "ws",
    )
    assert git(repo, "rev-parse", "mlops/best-1-train") == sha
    assert git(repo, "show", "mlops/best-1-train:models/train.py") == "EPOCHS = 20"
    assert git(repo, "show", "mlops/best-1-train:other.txt") == "x"
    assert git(repo, "rev-parse", "mlops/best-1-train^") == head
    assert git(repo, "rev-parse", "HEAD") == head and git(repo, "branch", "--show-current") == "main"
    assert (repo / "models" / "train.py").read_text() == "EPOCHS = 1\n"
    assert (repo / "scratch.txt").exists()
    with pytest.raises(PullError, match="only mlops/ branches"):
        commit_best(str(repo), head, "models/train.py", "x", "main", "m", tmp_path / "ws")
