"""The Jenkins side as code, checked without a Jenkins (none can run here): the six jobs and their view
rendered to XML by jenkins-job-builder and read (the triggers between them, their parameters and steps; job
5's shell step run as Jenkins would run it), and the Jenkinsfile linted by npm-groovy-lint and read."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.support.repos import ROOT

JOBS = [
    "mlops-1-pull",
    "mlops-2-classify",
    "mlops-3-train",
    "mlops-4-tweak",
    "mlops-5-notify",
    "mlops-6-monitor",
]
LINT = ROOT / ".tools" / "node_modules" / ".bin" / "npm-groovy-lint"
LINT_INSTALL = "npm install --prefix .tools npm-groovy-lint@15 (make test does it)"


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


def downstream(job: ET.Element) -> list[tuple[str, str]]:
    """(job, condition) for each parameterized trigger of a job's publishers."""
    edges = []
    for config in job.iter("hudson.plugins.parameterizedtrigger.BuildTriggerConfig"):
        for name in (config.findtext("projects") or "").split(","):
            edges.append((name.strip(), config.findtext("condition")))
    return edges


def test_six_freestyle_jobs_and_the_pipeline_view_are_rendered(rendered):
    assert sorted(n for n in rendered if n.startswith("mlops-")) == JOBS
    assert all(rendered[n].tag == "project" for n in JOBS)
    view = rendered["mlops pipeline"]
    assert view.tag == "au.com.centrumsystems.hudson.plugin.buildpipeline.BuildPipelineView"
    assert view.findtext("gridBuilder/firstJob") == "mlops-1-pull"


def test_the_rendered_jobs_trigger_one_another_in_order(rendered):
    chain = ["mlops-1-pull"]
    while True:
        onward = [name for name, condition in downstream(rendered[chain[-1]]) if condition != "FAILED"]
        if not onward:
            break
        (nxt,) = onward
        chain.append(nxt)
    assert chain == JOBS[:5]
    assert downstream(rendered["mlops-6-monitor"]) == []
    # Once the runs are planned, a failed training still reaches job 5, which reports and mails it.
    assert ("mlops-5-notify", "FAILED") in downstream(rendered["mlops-3-train"])
    assert ("mlops-5-notify", "ALWAYS") in downstream(rendered["mlops-4-tweak"])


def test_rendered_job_1_passes_the_commit_down_and_blocks_while_a_later_job_builds(rendered):
    pull = rendered["mlops-1-pull"]
    (config,) = pull.iter("hudson.plugins.parameterizedtrigger.BuildTriggerConfig")
    assert config.findtext(
        "configs/hudson.plugins.parameterizedtrigger.FileBuildParameters/propertiesFile"
    ) == ("mlops.properties")
    assert "MLOPS_COMMIT=" in pull.findtext("builders/hudson.tasks.Shell/command")
    assert pull.findtext("blockBuildWhenDownstreamBuilding") == "true"
    for name in JOBS[1:]:
        parameters = rendered[name].iter("hudson.model.StringParameterDefinition")
        assert "MLOPS_COMMIT" in [p.findtext("name") for p in parameters]


def test_rendered_job_1_is_triggered_by_a_github_push_and_by_polling(rendered):
    triggers = rendered["mlops-1-pull"].find("triggers")
    tags = [t.tag for t in triggers]
    assert "com.cloudbees.jenkins.GitHubPushTrigger" in tags and "hudson.triggers.SCMTrigger" in tags
    assert triggers.findtext("hudson.triggers.SCMTrigger/spec") == "H/5 * * * *"


def test_each_rendered_job_runs_its_entry_point_and_job_5_publishes_results(rendered):
    for number, name in enumerate(JOBS, start=1):
        command = rendered[name].findtext("builders/hudson.tasks.Shell/command")
        assert f"-m jobs.job{number}_" in command
    notify = rendered["mlops-5-notify"]
    assert notify.find("publishers/hudson.tasks.junit.JUnitResultArchiver") is not None
    archiver = notify.find("publishers/hudson.tasks.ArtifactArchiver")
    assert archiver.findtext("artifacts") == "results/**" and archiver.findtext("fingerprint") == "true"
    copies = notify.findtext("builders/hudson.tasks.Shell/command")
    assert 'cp -r "$MLOPS_WORKSPACE/runs/$run/model" "results/$run/"' in copies  # the model and its card
    bindings = ET.tostring(notify.find("buildWrappers"), encoding="unicode")
    assert "MLOPS_SMTP_PASSWORD" in bindings and "mlops-smtp" in bindings


@pytest.fixture(scope="module")
def lint_results(tmp_path_factory):
    """One npm-groovy-lint run (Java starts once) over the Jenkinsfile and a copy with a Groovy parse error."""
    assert LINT.exists(), f"npm-groovy-lint is missing: {LINT_INSTALL}"
    folder = tmp_path_factory.mktemp("groovylint")
    source = (ROOT / "Jenkinsfile").read_text()
    broken = source.replace("stages {", "stages {{", 1)
    assert broken != source
    for name, text in (("good", source), ("broken", broken)):
        (folder / name).mkdir()
        (folder / name / "Jenkinsfile").write_text(text)
    done = subprocess.run(
        [str(LINT), "--config", str(ROOT), "--failon", "warning", "--output", "json", "--noserver"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(done.stdout[done.stdout.index("{") :])
    by_dir = {Path(f).parent.name: v["errors"] for f, v in report["files"].items()}
    return done.returncode, by_dir


def test_the_jenkinsfile_passes_npm_groovy_lint(lint_results):
    _, by_dir = lint_results
    problems = [e for e in by_dir["good"] if e["severity"] in ("error", "warning")]
    assert problems == []


def test_the_linter_does_fail_on_a_groovy_parse_error(lint_results):
    returncode, by_dir = lint_results
    assert returncode != 0
    assert [e["rule"] for e in by_dir["broken"] if e["severity"] == "error"] == ["NglParseError"]


def stage_bodies(text: str) -> dict[str, str]:
    """Each stage's name and the text up to the next stage (the Jenkinsfile is linted above)."""
    found = list(re.finditer(r"stage\('([^']+)'\)", text))
    ends = [m.start() for m in found[1:]] + [text.index("post {")]
    return {m.group(1): text[m.end() : end] for m, end in zip(found, ends, strict=True)}


def test_the_jenkinsfile_has_one_stage_per_job_with_the_same_commands():
    text = (ROOT / "Jenkinsfile").read_text()
    stages = stage_bodies(text)
    assert len(stages) == 6
    for number, (name, body) in enumerate(stages.items(), start=1):
        assert name.startswith(f"{number} ")
        (module,) = re.findall(r"-m (jobs\.job\d_\w+)", body)
        assert (
            module.startswith(f"jobs.job{number}_") and (ROOT / (module.replace(".", "/") + ".py")).exists()
        )
        assert "--workspace" in body or "$RUN_FLAGS" in body
    for parameter in ("MLOPS_SOURCE", "MLOPS_REF", "MLOPS_TARGET", "MLOPS_MAX_TRIALS", "MLOPS_RUNTIME"):
        assert f"name: '{parameter}'" in text
    assert "githubPush()" in text and "pollSCM(" in text


def test_the_jenkinsfile_archives_publishes_and_notifies_with_bound_credentials():
    text = (ROOT / "Jenkinsfile").read_text()
    post = text[text.index("    post {") :]
    for pattern in (".mlops/runs/**/report.html", ".mlops/runs/**/best.py", ".mlops/runs/**/best.diff"):
        assert pattern in post.split("archiveArtifacts", 1)[1].split("\n", 1)[0]
    assert "junit testResults: '.mlops/runs/**/junit.xml'" in post
    # the run's model folder (the model and its card), not the trials' own copies, fingerprinted
    assert (
        "archiveArtifacts artifacts: '.mlops/runs/*/model/**', allowEmptyArchive: true, fingerprint: true"
        in post
    )
    for condition in ("success", "failure"):
        block = post.split(f"{condition} {{", 1)[1].split("}", 1)[0]
        assert "sendNotifications(" in block
    sender = text[text.index("void sendNotifications") : text.index("pipeline {")]
    assert "withCredentials(" in sender and "passwordVariable: 'MLOPS_SMTP_PASSWORD'" in sender
    assert "-m jobs.job5_notify" in sender and "--notify-only" in sender
    assert "MLOPS_SMTP_PASSWORD" not in text.replace(sender, "")  # bound only around the step that sends


def test_rendered_job_5_publishes_the_page_of_all_runs_even_when_a_run_failed(rendered, tmp_path):
    """Job 5's shell step as rendered, run as Jenkins runs it (sh -xe), on a workspace with a failed run."""
    from mlops.domain import RunStatus
    from tests.support.history import record_week

    notify = rendered["mlops-5-notify"]
    (publisher,) = notify.iter("htmlpublisher.HtmlPublisherTarget")
    assert (
        publisher.findtext("reportFiles") == "index.html" and publisher.findtext("reportName") == "mlops runs"
    )
    assert publisher.findtext("keepAll") == "false"  # the page shows every run: the latest copy is enough
    workspace = tmp_path / "mlops"
    ledger, runs = record_week(workspace)
    planned = [runs[5].id, runs[6].id]  # churn.py reached, net.py failed
    assert [ledger.run(r).status for r in planned] == [RunStatus.REACHED, RunStatus.FAILED]
    (workspace / "current-runs.json").write_text(json.dumps(planned))
    script = notify.findtext("builders/hudson.tasks.Shell/command").replace(
        "/opt/mlops/.venv/bin/python", sys.executable
    )
    job = tmp_path / "job"
    job.mkdir()
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "MLOPS_WORKSPACE": str(workspace),
        "MLOPS_TARGET": "0.8",
        "MLOPS_MAX_TRIALS": "5",
    }
    done = subprocess.run(
        ["sh", "-xe", "-c", script], cwd=job, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 1, done.stdout + done.stderr  # the failed run fails the build, after the copies
    page = job / publisher.findtext("reportDir") / "index.html"
    assert page.exists() and all(run.id in page.read_text() for run in runs)
    linked = set(re.findall(r'href="([^"]+)"', page.read_text()))
    reports = {href for href in linked if not href.startswith("scripts/")}  # the rest: the scripts' pages
    assert reports == {f"{run_id}/report.html" for run_id in planned}  # the reports job 5 wrote
    assert linked - reports, "the page links no script's page"
    assert all((page.parent / href).exists() for href in linked)  # the reports and the scripts' pages
    assert sorted(p.name for p in (job / "results").iterdir()) == sorted(planned)


def test_the_jenkinsfile_publishes_the_page_of_all_runs():
    text = (ROOT / "Jenkinsfile").read_text()
    post = text[text.index("    post {") :]
    always = post.split("always {", 1)[1].split("\n        }", 1)[0]
    call = always.split("publishHTML(", 1)[1].split("])", 1)[0]
    assert "reportDir: '.mlops/runs'" in call and "reportFiles: 'index.html'" in call
    assert "includes: 'index.html,*/report.html,scripts/*.html'" in call  # not the trials' folders
    assert "allowMissing: true" in call and "keepAll: false" in call
