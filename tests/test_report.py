"""The run report (opened in a real headless Chromium), the metric plot and the JUnit XML."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema

from mlops.domain import TrialStatus
from mlops.ledger import Ledger
from mlops.report import metric_plot_png, write_junit, write_report
from tests.conftest import run_cli

KMEANS = """
    from sklearn.cluster import KMeans
    from sklearn.datasets import make_blobs

    X, y = make_blobs(n_samples=400, centers=4, cluster_std=0.5, random_state=3)
    KMeans(n_clusters=2, n_init=5, random_state=0).fit(X)
"""
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tuned_run(tmp_path_factory):
    from tests.conftest import make_repo

    root = tmp_path_factory.mktemp("report")
    repo = make_repo(root / "repo", {"clusters.py": KMEANS})
    done = run_cli("run", str(repo), "--runtime", "local", "--workspace", str(root / "ws"), cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "report: " in done.stdout
    ledger = Ledger(root / "ws" / "ledger.db")
    (run,) = ledger.runs()
    return ledger, run


def test_the_report_has_the_verdict_leaderboard_plots_and_diff(tuned_run):
    ledger, run = tuned_run
    page = write_report(ledger, run.id).read_text()
    assert "Target reached" in page and f"{run.best_metric:.4f}" in page
    assert "n_clusters 2 -&gt; 4" in page or "n_clusters 2 -> 4" in page
    assert "silhouette rule" in page or "elbow rule" in page  # which rule chose k
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 2  # metric per trial; elbow and silhouette (no epochs for KMeans)
    assert all(base64.b64decode(i).startswith(PNG) for i in images)
    assert '<span class="add">+' in page and "n_clusters=4" in page
    assert "http://" not in page and "https://" not in page  # self-contained


def test_the_diff_is_escaped(tuned_run, tmp_path):
    ledger, run = tuned_run
    diff = run.dir / "best.diff"
    original = diff.read_text()
    try:
        diff.write_text(original + "+print('<script>alert(1)</script>')\n")
        page = write_report(ledger, run.id).read_text()
    finally:
        diff.write_text(original)
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_the_report_renders_in_chromium(tuned_run, tmp_path):
    from PIL import Image

    ledger, run = tuned_run
    report = write_report(ledger, run.id)
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is needed: `make test` installs it"
    shot = report.with_name("report.png")
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1280,1800",
            report.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    image = Image.open(shot).convert("L")
    assert image.size == (1280, 1800)
    low, high = image.getextrema()
    assert high - low > 100, "the screenshot is blank"
    colors = len(set(image.resize((320, 450)).getdata()))
    assert colors > 20, "the screenshot has no content"


def test_the_metric_plot_is_a_png(tuned_run):
    ledger, run = tuned_run
    assert metric_plot_png(ledger, run.id).startswith(PNG)


def test_junit_xml_validates_and_counts_every_trial(tuned_run):
    ledger, run = tuned_run
    # Two more trials, as a failed and a skipped trial would be recorded, to cover every case.
    n = len(ledger.trials(run.id))
    ledger.add_trial(run.id, n, [], ["epochs 1 -> 20"], seed=0)
    ledger.finish_trial(
        run.id,
        n,
        TrialStatus.FAILED,
        error="ValueError: bad shape",
        error_file="clusters.py",
        error_line=4,
        end_reason="exited",
        duration_s=1.5,
    )
    ledger.add_trial(
        run.id,
        n + 1,
        [],
        ["add a convolution block"],
        seed=0,
        status=TrialStatus.SKIPPED,
        error="caught before training: too many pooling layers",
    )
    path = write_junit(ledger, run.id)
    xmlschema.XMLSchema(Path(__file__).parent / "fixtures" / "junit.xsd").validate(path)
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite.get("tests") == str(n + 3) and suite.get("errors") == "1" and suite.get("skipped") == "1"
    assert suite.get("failures") == "0"  # the target was reached
    error = suite.find("testcase/error")
    assert error is not None and "clusters.py:4" in error.text
