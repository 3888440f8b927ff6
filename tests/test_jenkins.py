"""The Jenkins side as code: six chained jobs and their view rendered by jenkins-job-builder, and the
Jenkinsfile linted by npm-groovy-lint."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import ROOT

JOBS = [
    "mlops-1-pull",
    "mlops-2-classify",
    "mlops-3-train",
    "mlops-4-tweak",
    "mlops-5-notify",
    "mlops-6-monitor",
]
LINT = ROOT / ".tools" / "node_modules" / ".bin" / "npm-groovy-lint"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("jjb")
    jenkins_jobs = Path(sys.executable).parent / "jenkins-jobs"
    done = subprocess.run(
        [str(jenkins_jobs), "test", str(ROOT / "jobs" / "jenkins"), "-o", str(out)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return {p.name: ET.parse(p).getroot() for p in out.iterdir()}


def downstream(job: ET.Element) -> list[str]:
    names = []
    for projects in job.iter("projects"):
        names += [n.strip() for n in (projects.text or "").split(",") if n.strip()]
    return names


def test_six_freestyle_jobs_and_the_pipeline_view(rendered):
    assert sorted(n for n in rendered if n.startswith("mlops-")) == JOBS
    assert all(rendered[n].tag == "project" for n in JOBS)
    view = rendered["mlops pipeline"]
    assert view.tag == "au.com.centrumsystems.hudson.plugin.buildpipeline.BuildPipelineView"
    assert view.findtext("gridBuilder/firstJob") == "mlops-1-pull"


def test_the_jobs_are_chained_one_after_the_other(rendered):
    chain = ["mlops-1-pull"]
    while downstream(rendered[chain[-1]]):
        (nxt,) = downstream(rendered[chain[-1]])
        chain.append(nxt)
    assert chain == JOBS[:5]
    assert downstream(rendered["mlops-6-monitor"]) == []


def test_job_1_is_triggered_by_a_github_push_and_by_polling(rendered):
    triggers = rendered["mlops-1-pull"].find("triggers")
    tags = [t.tag for t in triggers]
    assert "com.cloudbees.jenkins.GitHubPushTrigger" in tags and "hudson.triggers.SCMTrigger" in tags
    assert triggers.findtext("hudson.triggers.SCMTrigger/spec") == "H/5 * * * *"


def test_each_job_runs_its_entry_point_and_job_5_publishes_results(rendered):
    for number, name in enumerate(JOBS, start=1):
        command = rendered[name].findtext("builders/hudson.tasks.Shell/command")
        assert f"-m jobs.job{number}_" in command
    notify = rendered["mlops-5-notify"]
    assert notify.find("publishers/hudson.tasks.junit.JUnitResultArchiver") is not None
    assert notify.find("publishers/hudson.tasks.ArtifactArchiver") is not None
    bindings = ET.tostring(notify.find("buildWrappers"), encoding="unicode")
    assert "MLOPS_SMTP_PASSWORD" in bindings and "mlops-smtp" in bindings


def lint(path: Path) -> subprocess.CompletedProcess:
    assert LINT.exists(), "npm-groovy-lint is missing: `make test` installs it into .tools/"
    return subprocess.run(
        [str(LINT), "--failon", "error", "--output", "txt", "--noserver", path.name],
        cwd=path.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_jenkinsfile_passes_npm_groovy_lint(tmp_path):
    done = lint(ROOT / "Jenkinsfile")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    for stage in (
        "1 pull",
        "2 classify and launch",
        "3 train and evaluate",
        "4 tweak and retrain",
        "5 report",
    ):
        assert f"stage('{stage}')" in (ROOT / "Jenkinsfile").read_text()


def test_the_linter_does_fail_on_a_groovy_parse_error(tmp_path):
    broken = tmp_path / "Jenkinsfile"
    broken.write_text((ROOT / "Jenkinsfile").read_text().replace("stages {", "stages {{", 1))
    assert lint(broken).returncode != 0
