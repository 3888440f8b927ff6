"""One page for all runs (``runs/index.html``): a row per run, newest first, filtered by status and sorted by
date in a real headless Chromium, and ``mlops history --html``. The ten runs of a week are written straight
into a real ledger (nothing trains); the finished ones get their real reports."""

from __future__ import annotations

import re
import shutil
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from mlops.domain import RunStatus
from mlops.index_page import _duration, write_index
from mlops.layout import INDEX_PAGE as INDEX
from mlops.report import GREEN, ORANGE, RED, write_report
from tests.support.browser import dump_dom, screenshot
from tests.support.history import WEEK, record_week
from tests.support.processes import run_cli

SHOTS = Path("/tmp/mlops-screenshots")  # kept after the test, to be looked at


class Rows(HTMLParser):
    """The runs table's body rows: their attributes and the text of each cell."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.rows: list[tuple[dict[str, str | None], list[str]]] = []
        self.cell: list[str] | None = None
        self.in_body = False
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tbody":
            self.in_body = True
        elif tag == "tr" and self.in_body:
            self.rows.append((dict(attrs), []))
        elif tag == "td" and self.in_body:
            self.cell = []
        elif tag == "a" and self.cell is not None:
            self.cell.append(f"[{dict(attrs)['href']}]")
        elif tag == "div" and self.cell is not None:
            self.cell.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self.cell is not None:
            self.rows[-1][1].append(" ".join("".join(self.cell).split()))
            self.cell = None
        elif tag == "tbody":
            self.in_body = False

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


WRITTEN: list[float] = []  # when the page of the week was being written (the fixture's bounds)


@pytest.fixture(scope="module")
def week(tmp_path_factory):
    workspace = tmp_path_factory.mktemp("week") / "ws"
    ledger, runs = record_week(workspace)
    for run in runs:
        if run.status is not RunStatus.RUNNING:
            write_report(ledger, run.id)
    # The time of a run still going is measured to when the page is written: the fixture's time bounds it.
    before = time.time()
    page = write_index(ledger, workspace / "runs")
    WRITTEN[:] = [before, time.time()]
    return ledger, runs, page


def test_a_row_per_run_newest_first_with_everything_a_person_looks_for(week):
    ledger, runs, page = week
    assert page == runs[0].dir.parent / INDEX
    rows = Rows(page.read_text()).rows
    assert [attrs["data-status"] for attrs, _ in rows] == [r.status.value for r in reversed(runs)]
    started = [float(attrs["data-started"] or 0) for attrs, _ in rows]
    assert started == sorted(started, reverse=True)
    by_id = {re.sub(r"^\[.*?\]", "", cells[1]).split()[1]: cells for _, cells in rows}
    cells = by_id[runs[1].id]  # ann.py: not reached, 5 trials, one restarted
    status, run, source, commit, kind, best, trials, restarts, took, when = cells
    assert status == "not reached"
    # its name opens its report; "history", the page of every commit of the script (mlops/script_page.py)
    assert re.match(
        r"\[2-ann/report\.html\]ann\.py 2-ann \[(scripts/[^\]]+\.html)\]history 5 trials used, best 0\.7400",
        run,
    ), run
    script_page = page.parent / re.findall(r"\[(scripts/[^\]]+)\]history", run)[0]
    assert "2-ann/report.html" in script_page.read_text()
    assert (page.parent / "2-ann" / "report.html").exists()
    assert source == "github.com/example/models" and commit == runs[1].commit[:10] and kind == "ann"
    assert best == "0.7400 / 0.8"
    assert (trials, restarts, took) == ("5 / 5", "1", "31 min")
    day = time.localtime(runs[1].created_at)
    assert time.strftime("%d %b", day) in when and when.endswith(time.strftime(" %H:%M", day))
    kmeans = by_id[runs[2].id]
    assert kmeans[2] == "ada/models" and kmeans[4] == "kmeans" and kmeans[5] == "0.5800 / 0.8 silhouette"
    failed = by_id[runs[3].id]
    assert failed[0] == "failed" and "SyntaxError" in failed[1] and failed[5] == "no accuracy"
    assert by_id[runs[5].id][4] == "other (forest)"
    running = by_id[runs[-1].id]
    so_far = {_duration(at - runs[-1].created_at) for at in WRITTEN}
    assert running[0] == "running" and running[6] == "2 / 5" and running[8] in so_far
    assert so_far <= {"20 min", "21 min"}  # recorded 20 minutes before the page was written
    assert running[1].startswith("big_cnn.py 10-big_cnn [scripts/")  # no report until job 5 writes it


def test_the_page_is_self_contained_and_its_bars_are_the_best_against_the_target(week):
    _, runs, page = week
    text = page.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), "the page refers to another address"
    assert "<link" not in text and text.count("<script>") == 1 and "<script src" not in text
    bars = re.findall(
        r'class="fill-(hit|miss)" style="width:([\d.]+)%"></span><i style="left:([\d.]+)%"', text
    )
    scored = [r for r in reversed(runs) if r.best_metric is not None]
    assert [(hit, float(width), float(left)) for hit, width, left in bars] == [
        ("hit" if r.best_metric >= r.target else "miss", round(100 * r.best_metric, 1), 80.0) for r in scored
    ]


ALL = [r.status.value for r in reversed(WEEK)]


@pytest.mark.parametrize(
    ("address", "pressed", "shown"),
    [
        ("", "all", ALL),
        ("#status=failed", "failed", ["failed", "failed"]),
        ("#status=nonsense", "all", ALL),  # a status no run can have: all of them
        ("#status=running", "running", ["running"]),
        ("#status=reached&sort=oldest", "reached", ["reached"] * 4),
        ("#sort=oldest", "all", ALL[::-1]),
    ],
)
def test_chromium_filters_the_rows_by_status_and_sorts_them_by_date(week, tmp_path, address, pressed, shown):
    _, runs, page = week
    dom = dump_dom(page.as_uri() + address, tmp_path / "profile")
    rows = Rows(dom).rows
    visible = [attrs for attrs, _ in rows if "hidden" not in attrs]
    assert [attrs["data-status"] for attrs in visible] == shown
    started = [float(attrs["data-started"] or 0) for attrs in visible]
    assert started == sorted(started, reverse="oldest" not in address)
    assert len(rows) == len(runs)  # filtered out, not removed
    assert re.search(rf'<span id="shown">{len(shown)}</span>', dom)
    assert re.findall(r'data-filter="(\w+)" aria-pressed="true"', dom) == [pressed]
    assert ("started ↑" if "oldest" in address else "started ↓") in dom


def colour(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def test_the_page_of_a_week_of_runs_renders_in_chromium(week, tmp_path):
    _, runs, page = week
    shot = screenshot(page.as_uri(), tmp_path / "index.png", tmp_path / "profile", 1400, 900)
    SHOTS.mkdir(exist_ok=True)
    shutil.copy(shot, SHOTS / "index.png")
    image = Image.open(shot).convert("RGB")
    assert image.size == (1400, 900)
    pixels = list(image.getdata())
    # The status badges and the bars, in the report's colours: green reached, orange not reached, red failed.
    for name, hex_colour in (("green", GREEN), ("orange", ORANGE), ("red", RED)):
        assert pixels.count(colour(hex_colour)) > 300, f"no {name} on the page"
    rows = image.crop((0, 200, 1400, 900)).convert("L").resize((140, 70))
    assert len(set(rows.getdata())) > 20, "the table is empty"


def test_mlops_history_html_writes_the_page_when_missing_and_prints_its_path(week, tmp_path):
    ledger, runs, page = week
    page.unlink()
    done = run_cli("history", "--html", "--workspace", str(ledger.path.parent), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{page}\n" and page.exists()
    assert len(Rows(page.read_text()).rows) == len(runs)
    empty = run_cli("history", "--html", "--workspace", str(tmp_path / "new"), cwd=tmp_path)
    assert empty.returncode == 0 and "No run here yet" in Path(empty.stdout.strip()).read_text()
