"""The report's plots drawn ahead, in a thread, while the run's model is checked: the report takes them as
they are when nothing they show changed, and draws again when something did."""

from __future__ import annotations

import pytest

from mlops import report_plots
from mlops.domain import TrialStatus
from mlops.report import write_report
from tests.support.models_left import finished_run


def no_pyplot():
    raise AssertionError("drawn again")


def test_the_report_takes_the_plots_drawn_ahead_and_draws_again_what_changed(tmp_path, monkeypatch):
    ledger, run = finished_run(tmp_path, [b"first model", b"second model"])
    report_plots.draw_ahead(run, ledger.trials(run.id)).join()
    drawn = report_plots.metric_plot_png(ledger, run.id)
    assert drawn.startswith(b"\x89PNG")

    monkeypatch.setattr(report_plots, "_pyplot", no_pyplot)  # from here on, nothing may be drawn
    assert report_plots.metric_plot_png(ledger, run.id) == drawn
    page = write_report(ledger, run.id).read_text()
    assert "metric per trial" in page

    ledger.add_trial(run.id, 2, [], ["change 2"], 2, TrialStatus.PENDING)  # what the plot shows changed
    with pytest.raises(AssertionError, match="drawn again"):
        report_plots.metric_plot_png(ledger, run.id)
    monkeypatch.undo()
    assert report_plots.metric_plot_png(ledger, run.id) != drawn
