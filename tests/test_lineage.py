"""A script's lineage across commits, on real git repositories made here."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from mlops import lineage
from mlops.ledger import Ledger, RunRecord
from mlops.ledger.events import LedgerEventKind
from mlops.pull import pull
from tests.support.repos import git, make_repo

MODEL = "import keras\nmodel = keras.Sequential([keras.layers.Dense(10)])\nmodel.fit(x, y, epochs=2)\n"


def run_at(ledger: Ledger, workspace: Path, repo: Path, script: str, ref: str | None = None) -> RunRecord:
    """What job 2 does for one script of the commit checked out (or ``ref``): a run, linked."""
    checkout = pull(str(repo), ref, workspace, ledger)
    run = ledger.create_run(
        name=Path(script).stem,
        source=checkout.source,
        ref=checkout.ref,
        commit=checkout.commit,
        author=checkout.author,
        code_dir=checkout.code_dir,
        script=script,
        classification={"kind": "ann", "framework": "keras"},
        runtime="local",
        metric="accuracy",
        target=0.9,
        strategy="tpe",
        max_trials=3,
        settings={"seed": 0},
        runs_dir=workspace / "runs",
    )
    lineage.record(ledger, run, lineage.branch_of(checkout))
    return run


def commit(repo: Path, files: dict[str, str], message: str) -> None:
    make_repo(repo, files, message)


def test_runs_of_one_script_form_its_lineage_across_commits(tmp_path):
    repo = make_repo(tmp_path / "repo", {"model.py": MODEL})
    ledger = Ledger(tmp_path / "ws" / "ledger.db")
    first = run_at(ledger, tmp_path / "ws", repo, "model.py")
    commit(repo, {"model.py": "# a comment\n" + MODEL}, "a comment")
    second = run_at(ledger, tmp_path / "ws", repo, "model.py")
    commit(repo, {"model.py": MODEL.replace("epochs=2", "epochs=3")}, "more epochs")
    third = run_at(ledger, tmp_path / "ws", repo, "model.py")

    assert lineage.previous_run(ledger, first) is None
    assert lineage.previous_run(ledger, second).id == first.id
    assert lineage.previous_run(ledger, third).id == second.id
    key = lineage.script_key(ledger, third)
    assert [r.id for r in lineage.lineage(ledger, key)] == [first.id, second.id, third.id]
    assert lineage.link(ledger, third).branch == "main"
    assert any(e.kind == LedgerEventKind.LINEAGE for e in ledger.events(third.id))


def test_a_rename_git_follows_keeps_the_lineage(tmp_path):
    repo = make_repo(tmp_path / "repo", {"model.py": MODEL, "other.py": "print('hi')\n"})
    ledger = Ledger(tmp_path / "ws" / "ledger.db")
    first = run_at(ledger, tmp_path / "ws", repo, "model.py")
    git(repo, "mv", "model.py", "net.py")
    (repo / "net.py").write_text(MODEL + "# renamed and touched\n")
    git(repo, "commit", "-qam", "rename")
    renamed = run_at(ledger, tmp_path / "ws", repo, "net.py")

    assert lineage.previous_run(ledger, renamed).id == first.id
    assert lineage.script_key(ledger, renamed) == lineage.script_key(ledger, first)
    assert lineage.link(ledger, renamed).path == "net.py"


def test_another_script_or_a_new_file_of_the_same_name_elsewhere_is_another_lineage(tmp_path):
    repo = make_repo(tmp_path / "repo", {"model.py": MODEL, "cnn.py": MODEL})
    ledger = Ledger(tmp_path / "ws" / "ledger.db")
    model = run_at(ledger, tmp_path / "ws", repo, "model.py")
    commit(repo, {"cnn.py": "# changed\n" + MODEL}, "cnn only")
    cnn = run_at(ledger, tmp_path / "ws", repo, "cnn.py")
    other_repo = make_repo(tmp_path / "other", {"model.py": MODEL})
    elsewhere = run_at(ledger, tmp_path / "ws", other_repo, "model.py")

    assert lineage.previous_run(ledger, cnn) is None  # model.py's run is not cnn.py's lineage
    assert lineage.previous_run(ledger, elsewhere) is None  # the same path in another repository
    keys = {lineage.script_key(ledger, r) for r in (model, cnn, elsewhere)}
    assert len(keys) == 3


def test_a_branch_has_its_own_lineage(tmp_path):
    repo = make_repo(tmp_path / "repo", {"model.py": MODEL})
    ledger = Ledger(tmp_path / "ws" / "ledger.db")
    on_main = run_at(ledger, tmp_path / "ws", repo, "model.py")
    git(repo, "checkout", "-qb", "wide")
    commit(repo, {"model.py": MODEL.replace("Dense(10)", "Dense(64)")}, "wider")
    on_branch = run_at(ledger, tmp_path / "ws", repo, "model.py")
    git(repo, "checkout", "-q", "main")
    commit(repo, {"model.py": "# main goes on\n" + MODEL}, "main")
    main_again = run_at(ledger, tmp_path / "ws", repo, "model.py", ref="main")

    assert lineage.link(ledger, on_branch).branch == "wide"
    assert lineage.previous_run(ledger, on_branch) is None
    assert lineage.previous_run(ledger, main_again).id == on_main.id


def test_a_ledger_from_before_lineage_gets_its_links(tmp_path):
    repo = make_repo(tmp_path / "repo", {"model.py": MODEL})
    path = tmp_path / "ws" / "ledger.db"
    ledger = Ledger(path)
    first = run_at(ledger, tmp_path / "ws", repo, "model.py")
    git(repo, "mv", "model.py", "net.py")
    git(repo, "commit", "-qm", "rename")
    second = run_at(ledger, tmp_path / "ws", repo, "net.py")
    ledger.close()
    with sqlite3.connect(path) as conn:  # as an older mlops left it: no lineage table at all
        conn.execute("DROP TABLE lineage")

    read_only = Ledger(path, read_only=True)  # mlops history: answered without writing
    assert lineage.previous_run(read_only, read_only.run(second.id)).id == first.id
    assert lineage.warm_from(read_only, read_only.run(second.id)) is None
    read_only.close()
    with sqlite3.connect(path) as conn:
        assert not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'lineage'").fetchall()

    writable = Ledger(path)
    key = lineage.script_key(writable, writable.run(first.id))
    assert [r.id for r in lineage.lineage(writable, key)] == [first.id, second.id]
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM lineage").fetchone()[0] == 2


def test_warm_from_is_recorded(tmp_path):
    repo = make_repo(tmp_path / "repo", {"model.py": MODEL})
    ledger = Ledger(tmp_path / "ws" / "ledger.db")
    first = run_at(ledger, tmp_path / "ws", repo, "model.py")
    commit(repo, {"model.py": "# again\n" + MODEL}, "again")
    second = run_at(ledger, tmp_path / "ws", repo, "model.py")
    assert lineage.warm_from(ledger, second) is None
    lineage.set_warm_from(ledger, second, first)
    assert lineage.warm_from(ledger, second).id == first.id
