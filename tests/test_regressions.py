"""Regressions said: a commit that halves a real model's width, against the commit before it, on a real git
history made here, trained for real (scikit-learn's MLP on the digits), mailed to a real SMTP server."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from email import message_from_bytes, policy
from pathlib import Path

import pytest
import xmlschema

from mlops.ledger import Ledger
from mlops.regression import Change, _change, compare
from tests.support.mail import smtp_inbox
from tests.support.processes import run_cli
from tests.support.repos import make_repo

JUNIT_XSD = Path(__file__).parent / "fixtures" / "junit.xsd"
MLP = """\
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

x, y = load_digits(return_X_y=True)
x_train, x_test, y_train, y_test = train_test_split(x / 16, y, random_state=0)
model = MLPClassifier(hidden_layer_sizes=(WIDTH,), max_iter=200, random_state=0)
model.fit(x_train, y_train)
print("accuracy", model.score(x_test, y_test))
"""


def mlops(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = run_cli(*args, cwd=cwd, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def run_twice(tmp_path: Path, env: dict[str, str] | None) -> tuple[Path, Path, str]:
    repo = make_repo(tmp_path / "repo", {"mlp.py": MLP.replace("WIDTH", "4")}, "an MLP four wide")
    ws = tmp_path / "ws"
    common = ("--runtime", "local", "--workspace", str(ws), "--max-trials", "1", "--target", "0.99")
    mlops("run", str(repo), *common, cwd=tmp_path)
    make_repo(repo, {"mlp.py": MLP.replace("WIDTH", "2")}, "halve the width")
    said = mlops("run", str(repo), *common, cwd=tmp_path, env=env)
    return ws, repo, said


def test_a_commit_that_halves_the_width_is_a_regression_everywhere(tmp_path):
    with smtp_inbox() as (inbox, mail_env):
        ws, repo, said = run_twice(tmp_path, mail_env)
    ledger = Ledger(ws / "ledger.db", read_only=True)
    first, second = ledger.runs()

    comparison = compare(ledger, second)  # typed, from the ledger
    assert comparison is not None and comparison.previous == first.id
    assert comparison.change is Change.REGRESSION
    assert comparison.as_pushed.before is not None and comparison.as_pushed.after is not None
    assert comparison.as_pushed.before - comparison.as_pushed.after > 0.02
    assert compare(ledger, first) is None  # the script's first commit has nothing to compare with
    assert "regression against run" in said  # the run's own output

    # The verdict of the report.
    report = (second.dir / "report.html").read_text()
    assert "<b>Regression</b> against run" in report

    # The mail's subject.
    (raw,) = inbox.messages
    subject = message_from_bytes(raw, policy=policy.default)["Subject"]
    assert subject.startswith("[mlops] REGRESSION: mlp.py"), subject

    # The JUnit file: a failed test case, so Jenkins marks the build unstable; valid against the schema.
    xmlschema.XMLSchema(JUNIT_XSD).validate(second.dir / "junit.xml")
    suite = ET.parse(second.dir / "junit.xml").getroot().find("testsuite")
    case = next(c for c in suite.iter("testcase") if c.get("name", "").startswith("no regression"))
    failure = case.find("failure")
    assert failure is not None and failure.get("type") == "Regression"
    first_suite = ET.parse(first.dir / "junit.xml").getroot().find("testsuite")
    assert not [c for c in first_suite.iter("testcase") if c.get("name", "").startswith("no regression")]

    # mlops history: the table and --json.
    table = mlops("history", "--workspace", str(ws), cwd=tmp_path)
    assert "regression" in table.splitlines()[-3] or "regression" in table
    rows = [
        json.loads(line)
        for line in mlops("history", "--json", "--workspace", str(ws), cwd=tmp_path).splitlines()
    ]
    by_id = {r["run"]: r for r in rows}
    assert by_id[first.id]["previous"] is None and by_id[first.id]["regression"] is None
    assert by_id[second.id]["previous"] == first.id
    regression = by_id[second.id]["regression"]
    assert regression["as_pushed"]["before"] == pytest.approx(comparison.as_pushed.before)
    assert regression["as_pushed"]["after"] == pytest.approx(comparison.as_pushed.after)
    assert regression["best"]["before"] == pytest.approx(first.best_metric)


def test_the_commit_that_restores_the_width_is_an_improvement_and_no_regression(tmp_path):
    ws, repo, _ = run_twice(tmp_path, None)
    make_repo(repo, {"mlp.py": MLP.replace("WIDTH", "4")}, "width back to four")
    common = ("--runtime", "local", "--workspace", str(ws), "--max-trials", "1", "--target", "0.99")
    said = mlops("run", str(repo), *common, cwd=tmp_path)
    ledger = Ledger(ws / "ledger.db", read_only=True)
    third = ledger.runs()[-1]
    comparison = compare(ledger, third)
    assert comparison is not None and comparison.change is Change.IMPROVEMENT
    assert "improvement against run" in said
    rows = [
        json.loads(line)
        for line in mlops("history", "--json", "--workspace", str(ws), cwd=tmp_path).splitlines()
    ]
    assert [r["regression"] is None for r in rows] == [True, False, True]
    suite = ET.parse(third.dir / "junit.xml").getroot().find("testsuite")
    case = next(c for c in suite.iter("testcase") if c.get("name", "").startswith("no regression"))
    assert case.find("failure") is None
    first, second, _ = ledger.runs()

    # mlops history SCRIPT: one row per commit, the regression said; options after the positional too.
    table = mlops("history", "mlp.py", "--workspace", str(ws), cwd=tmp_path)
    assert all(run.id in table for run in (first, second, third)), table
    assert "REGRESSION" in table and "halve the width" in table
    assert f"run {second.id}: regression against run {first.id}" in table

    # mlops compare RUN RUN: side by side, and the diff of the best sources.
    side = mlops("compare", first.id, second.id, "--workspace", str(ws), cwd=tmp_path)
    assert "-model = MLPClassifier(hidden_layer_sizes=(4,)" in side, side
    assert "+model = MLPClassifier(hidden_layer_sizes=(2,)" in side
    assert "regression" in side

    # The page of all runs links each run to its script's page: a row per commit, the plot, the regression.
    index = Path(mlops("history", "--html", "--workspace", str(ws), cwd=tmp_path).strip())
    hrefs = set(re.findall(r'href="(scripts/[^"]+)"[^>]*>history<', index.read_text()))
    assert len(hrefs) == 1, hrefs
    page = (index.parent / hrefs.pop()).read_text()
    assert page.count("<tr><td><a href=") == 3
    assert "width back to four" in page and ">exhausted, regression<" in page
    assert "data:image/png;base64," in page


def test_a_drop_within_the_tolerance_is_no_regression(tmp_path):
    """The same two commits with a tolerance wider than the drop: nothing said against them."""
    repo = make_repo(tmp_path / "repo", {"mlp.py": MLP.replace("WIDTH", "4")}, "four wide")
    ws = tmp_path / "ws"
    common = ("--runtime", "local", "--workspace", str(ws), "--max-trials", "1", "--target", "0.99")
    env = {"MLOPS_REGRESSION_TOLERANCE": "0.5"}
    mlops("run", str(repo), *common, cwd=tmp_path, env=env)
    make_repo(repo, {"mlp.py": MLP.replace("WIDTH", "2")}, "halve the width")
    mlops("run", str(repo), *common, cwd=tmp_path, env=env)
    ledger = Ledger(ws / "ledger.db", read_only=True)
    comparison = compare(ledger, ledger.runs()[-1])
    assert comparison is not None and comparison.tolerance == 0.5
    assert comparison.change is Change.SAME


@pytest.mark.parametrize(
    ("metric_lower", "before", "after", "expected"),
    [
        (False, 0.90, 0.85, Change.REGRESSION),  # an accuracy down by more than 0.02
        (False, 0.90, 0.89, Change.SAME),
        (False, 0.85, 0.90, Change.IMPROVEMENT),
        (True, 0.30, 0.40, Change.REGRESSION),  # a loss up by more than 0.02
        (True, 0.40, 0.30, Change.IMPROVEMENT),
        (False, None, 0.90, Change.SAME),  # nothing to compare with
    ],
)
def test_which_way_is_worse_follows_the_metric(metric_lower, before, after, expected):
    assert _change(before, after, 0.02, metric_lower) is expected
