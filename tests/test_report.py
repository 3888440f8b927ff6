"""The run report (opened in a real headless Chromium), the metric plot and the JUnit XML.

Runs are real: a KMeans repository tuned by ``mlops run``, and runs recorded trial by trial with the real
harness (a scikit-learn classifier with a failing and a skipped trial; a small Keras network, slow).
"""

from __future__ import annotations

import base64
import io
import re
import textwrap
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest
import xmlschema
from PIL import Image

from mlops.domain import EndReason, RunStatus, TrialStatus
from mlops.ledger import Ledger, TrialEnd
from mlops.report import GREEN, learning_curves_png, metric_plot_png, write_junit, write_report
from tests.support.browser import screenshot
from tests.support.processes import run_cli
from tests.support.recorded import Variant, record_run
from tests.support.scripts import CLASSIFIER, KERAS, TWEAK
from tests.support.scripts import KMEANS_LABELLED as KMEANS
from tweak.codemods import AddDenseLayer, SetEstimatorParam

PNG = b"\x89PNG\r\n\x1a\n"
JUNIT_XSD = Path(__file__).parent / "fixtures" / "junit.xsd"


def classifier_variants() -> list[Variant]:
    better = CLASSIFIER.replace("C=1e-05, max_iter=200)", "C=1.0, max_iter=200)  # C < 1e-3 underfits")
    broken = CLASSIFIER.replace("max_iter=200", "max_iter=200, solver='sgd'")
    return [
        Variant(CLASSIFIER),
        Variant(better, ["C 1e-05 -> 1.0", "why: the model underfits"], [TWEAK]),
        Variant(
            broken,
            ["solver lbfgs -> sgd"],
            [SetEstimatorParam(estimators=["LogisticRegression"], param="solver", value="sgd")],
        ),
        Variant(None, ["add a dense layer"], [AddDenseLayer()], "caught before training: no Keras"),
    ]


@pytest.fixture(scope="module")
def tuned_run(tmp_path_factory):
    """A KMeans repository tuned by the real pipeline, which writes the report and the JUnit XML."""
    from tests.support.repos import make_repo

    root = tmp_path_factory.mktemp("report")
    repo = make_repo(root / "repo", {"clusters.py": KMEANS})
    done = run_cli("run", str(repo), "--runtime", "local", "--workspace", str(root / "ws"), cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "report: " in done.stdout
    ledger = Ledger(root / "ws" / "ledger.db")
    (run,) = ledger.runs()
    return ledger, run


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory):
    classification = {"kind": "other", "family": "classic", "framework": "sklearn", "image": "mlops-sklearn"}
    root = tmp_path_factory.mktemp("classifier")
    return record_run(root, "clf.py", classifier_variants(), classification, target=0.9)


class Tables(HTMLParser):
    """The text of every table cell, table by table and row by row."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.cell: list[str] | None = None
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = []
        elif tag == "br" and self.cell is not None:
            self.cell.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.cell is not None:
            self.tables[-1][-1].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def images(page: str) -> list[Image.Image]:
    found = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert all(base64.b64decode(i).startswith(PNG) for i in found)
    return [Image.open(io.BytesIO(base64.b64decode(i))) for i in found]


def assert_self_contained(page: str) -> None:
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "the report refers to another address"
    assert "<script" not in page and "<link" not in page


@pytest.mark.slow
def test_the_leaderboard_shows_each_trial_what_it_changed_and_why_it_failed(classifier_run):
    ledger, run = classifier_run
    trials = ledger.trials(run.id)
    assert [t.status for t in trials] == [
        TrialStatus.SUCCEEDED,
        TrialStatus.SUCCEEDED,
        TrialStatus.FAILED,
        TrialStatus.SKIPPED,
    ]
    page = write_report(ledger, run.id).read_text()
    header, *rows = Tables(page).tables[0]
    assert header == ["trial", "what changed", "accuracy", "status", "time", "epochs", "restarts"]
    assert len(rows) == len(trials)
    for row, t in zip(rows, trials, strict=True):
        assert row[0] == f"{t.number} ★" if t.number == run.best_trial else str(t.number)
        assert row[2] == (f"{t.metric:.4f}" if t.metric is not None else "-")
        assert row[3] == t.status.value and row[6] == str(t.restarts)
        assert row[4] == (f"{t.duration_s:.1f} s" if t.duration_s is not None else "-")
        assert all(change in row[1] for change in t.changes) and (t.changes or row[1] == "as pushed")
    broken = trials[2]
    fit_line = textwrap.dedent(CLASSIFIER).splitlines().index("model.fit(Xtr, ytr)") + 1
    assert (broken.error_file, broken.error_line) == ("clf.py", fit_line)
    assert f"clf.py:{fit_line}: " in rows[2][1] and "solver" in rows[2][1]
    assert "caught before training: no Keras" in rows[3][1]


@pytest.mark.slow
def test_the_verdict_says_whether_the_target_was_reached_and_by_how_much_tuning_lifted_it(classifier_run):
    ledger, run = classifier_run
    trials = ledger.trials(run.id)
    assert run.status is RunStatus.REACHED and run.best_trial == 1
    page = write_report(ledger, run.id).read_text()
    verdict = re.search(r'<div class="verdict reached">(.*?)<div class="figures">', page, re.S).group(1)
    assert "Target reached" in verdict and f"<b>{run.best_metric:.4f}</b> (trial 1)" in verdict
    assert f"{run.best_metric - trials[0].metric:+.4f}" in verdict and f"{trials[0].metric:.4f}" in verdict
    environment = dict(Tables(page).tables[-1])  # the last table; the model's card is before it
    assert environment["commit"] == run.commit and environment["author"] == run.author
    assert environment["runtime"] == "local" and environment["strategy"] == "tpe"
    assert environment["image"] == "mlops-sklearn" and environment["seed"] == "0"


@pytest.mark.slow
def test_the_plots_are_embedded_pngs_and_the_page_needs_nothing_else(classifier_run, tuned_run):
    ledger, run = classifier_run
    page = write_report(ledger, run.id).read_text()
    assert len(images(page)) == 1  # the metric per trial; no epochs, no clustering
    assert learning_curves_png(run, ledger.trials(run.id)) is None
    assert_self_contained(page)
    ledger, run = tuned_run
    page = write_report(ledger, run.id).read_text()
    assert [i.size[0] > 600 for i in images(page)] == [True, True]  # the metric; elbow and silhouette
    assert "Choosing k: elbow and silhouette" in page and "Learning curves" not in page
    assert_self_contained(page)


@pytest.mark.slow
def test_the_best_bar_is_green_when_it_reached_the_target(classifier_run):
    ledger, run = classifier_run
    image = Image.open(io.BytesIO(metric_plot_png(ledger, run.id))).convert("RGB")
    green = tuple(int(GREEN[i : i + 2], 16) for i in (1, 3, 5))
    assert sum(1 for pixel in image.getdata() if pixel == green) > 500


@pytest.mark.slow
def test_the_diff_of_the_best_source_is_coloured_and_escaped(classifier_run):
    ledger, run = classifier_run
    page = write_report(ledger, run.id).read_text()
    diff = re.search(r'<pre class="diff">(.*?)</pre>', page, re.S).group(1)
    assert '<span class="del">-model = LogisticRegression(C=1e-05, max_iter=200)</span>' in diff
    assert (
        '<span class="add">+model = LogisticRegression(C=1.0, max_iter=200)  # C &lt; 1e-3 underfits' in diff
    )
    assert '<span class="ctx"> print(&quot;&lt;b&gt;test accuracy&lt;/b&gt;&quot;' in diff  # context, escaped
    assert "<b>" not in diff and " < 1e-3" not in page


@pytest.mark.slow
def test_the_kmeans_report_shows_the_chosen_k_and_the_rule(tuned_run):
    ledger, run = tuned_run
    page = write_report(ledger, run.id).read_text()
    assert "Target reached" in page and f"{run.best_metric:.4f}" in page
    assert "n_clusters 2 -&gt; 4" in page
    assert "silhouette rule" in page or "elbow rule" in page  # which rule chose k
    assert '<span class="add">+KMeans(n_clusters=4' in page


@pytest.mark.slow
@pytest.mark.parametrize("fixture", ["tuned_run", "classifier_run"])
def test_the_report_renders_in_chromium(fixture, request, tmp_path):
    ledger, run = request.getfixturevalue(fixture)
    report = write_report(ledger, run.id)
    shot = screenshot(report.as_uri(), report.with_name("report.png"), tmp_path / "profile", 1280, 2000)
    image = Image.open(shot).convert("L")
    assert image.size == (1280, 2000)
    low, high = image.getextrema()
    assert high - low > 100, "the screenshot is blank"
    top, bottom = image.crop((0, 0, 1280, 400)), image.crop((0, 1000, 1280, 1400))
    for part in (top, bottom):  # the verdict at the top, the plots further down
        assert len(set(part.resize((320, 100)).getdata())) > 20, "part of the page is empty"


@pytest.mark.slow
def test_junit_xml_validates_and_has_a_case_per_trial_and_the_target(classifier_run):
    ledger, run = classifier_run
    trials = ledger.trials(run.id)
    path = write_junit(ledger, run.id)
    schema = xmlschema.XMLSchema(JUNIT_XSD)
    schema.validate(path)
    tree = ET.parse(path)
    suite = tree.getroot().find("testsuite")
    cases = suite.findall("testcase")
    errors = suite.attrib.pop("errors")
    assert not schema.is_valid(tree), "the schema accepts a testsuite without its errors count"
    suite.set("errors", errors)
    assert suite.get("tests") == str(len(trials) + 1) == str(len(cases))
    assert suite.get("errors") == "1" and suite.get("skipped") == "1" and suite.get("failures") == "0"
    assert cases[0].get("name") == "target reached" and cases[0].find("failure") is None
    error = cases[3].find("error")  # trial 2
    assert error is not None and f"clf.py:{trials[2].error_line}: " in error.get("message")
    assert cases[4].find("skipped").get("message") == "skipped: caught before training: no Keras"
    assert float(suite.get("time")) == pytest.approx(sum(t.duration_s or 0 for t in trials), abs=0.01)
    assert len({c.get("name") for c in cases}) == len(cases)


def test_junit_fails_the_target_case_and_keeps_errors_with_terminal_colours_valid(tmp_path):
    ledger = Ledger(tmp_path / "ledger.db")
    run = ledger.create_run(
        name="cnn",
        source="repo",
        ref=None,
        commit="0" * 40,
        author=None,
        code_dir=tmp_path,
        script="cnn.py",
        classification={"kind": "cnn"},
        runtime="local",
        metric="accuracy",
        target=0.8,
        strategy="tpe",
        max_trials=1,
        settings={},
        runs_dir=tmp_path / "runs",
    )
    ledger.add_trial(run.id, 0, [], [], 0)
    ledger.finish_trial(
        run.id,
        0,
        TrialEnd(
            TrialStatus.FAILED,
            error="\x1b[31mValueError\x1b[0m: bad shape",
            error_file="cnn.py",
            error_line=7,
            end_reason=EndReason.EXITED,
        ),
    )
    ledger.finish_run(run.id, RunStatus.FAILED, "3 trials failed in a row")
    path = write_junit(ledger, run.id)
    xmlschema.XMLSchema(JUNIT_XSD).validate(path)
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite.get("failures") == "1" and suite.get("errors") == "1"
    failure = suite.find("testcase/failure")
    assert failure.get("message") == "best accuracy none < target 0.8"
    assert failure.text == "3 trials failed in a row"
    assert "ValueError" in suite.find("testcase/error").get("message")
    assert "failed" in write_report(ledger, run.id).read_text()  # a run with no metric still has a report


@pytest.mark.slow
def test_learning_curves_come_from_the_epochs_of_each_trial(tmp_path):
    classification = {"kind": "ann", "family": "dense", "framework": "keras", "image": "mlops-keras3"}
    longer = KERAS.replace("epochs=4", "epochs=7").replace("Adam(0.001)", "Adam(0.01)")
    variants = [Variant(KERAS), Variant(longer, ["epochs 4 -> 7", "learning rate 0.001 -> 0.01"])]
    ledger, run = record_run(tmp_path, "net.py", variants, classification, target=0.8)
    trials = ledger.trials(run.id)
    assert [t.epochs for t in trials] == [4, 7]
    page = write_report(ledger, run.id).read_text()
    _, *rows = Tables(page).tables[0]
    assert [row[5] for row in rows] == ["4", "7"]
    metric, curves = images(page)
    assert "Learning curves" in page and curves.size[0] > metric.size[0] * 0.9
    assert learning_curves_png(run, trials).startswith(PNG)
