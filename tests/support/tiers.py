"""Which tests `make test` leaves to `make test-full` (the marker ``full``), and why.

`make test` is what CI runs on every change, on 2 cores: it must stay well under 30 minutes, and the whole
suite takes about an hour there (2026-12-07: 6,800 test-seconds, 57 min on two workers, CPU-bound). So
`make test` runs every test but these, and `make test-full` runs these: the second runtime of a scenario the
first runtime already covers end to end (the security suite keeps both, but for the few named below), most
of the two corpora (a sample of each runs in `make test`), the cluster failure drills, and a few tests whose
feature another test of `make test` covers. Nothing here is skipped: each test
runs in one of the two targets, and both targets together are the whole suite.
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase
from typing import Any

import pytest

# The corpus of tests/fixtures/repos/ in `make test`: one runtime each; metrics, failures of the code, its
# data, a download, its requirements and a name never defined, a prompt, requirements installed, the legacy
# Keras 2 environment, a data set import.
CORPUS_IN_MAKE_TEST = {
    ("notebook_keras_digits", "local"),
    ("keras2_np_utils_digits", "local"),
    ("heart_csv_relative", "local"),
    ("asks_epochs", "local"),
    ("digits_tqdm_requirements", "local"),
    ("kmeans_iris_silhouette", "local"),
    ("keras_typo_import", "local"),
    ("notebook_cell_fragment", "local"),
    ("requirements_no_such_package", "local"),
    ("classic_input_txt_absolute", "docker"),
    ("missing_csv", "docker"),
    ("download_refused", "docker"),
    ("wine_pyproject_tabulate", "docker"),
    ("plain_bug", "docker"),
    ("mnist_custom_cache_name", "docker"),
    ("joblib_dump_absolute", "docker"),
}

# The PyTorch corpus (tests/fixtures/torch_repos/) in `make test`: Lightning with torchmetrics, a weak
# plain loop tuned, a plain loop on Docker.
TORCH_CORPUS_IN_MAKE_TEST = {
    ("lightning_torchmetrics", "local"),
    ("weak_raw_pixels", "local"),
    ("plain_mlp_digits", "docker"),
}

# Node ids (fnmatch patterns) of the other tests left to `make test-full`, with what covers them in
# `make test`.
FULL = (
    # a Keras loop's last evaluation kept after its timeout: the fork storm's score kept after its timeout
    # stays, on both runtimes
    "tests/security/test_limits.py::test_a_script_looping_while_accuracy_is_low_*",
    # Docker's oom and work/ emptied: the local runtime's stay, and Docker's memory limit is the runtime
    # contract's
    "tests/security/test_limits.py::test_a_metric_measured_before_an_oom_is_kept_labelled[[]docker[]]",
    "tests/security/test_limits.py::test_work_is_emptied_when_the_run_ends_unless_it_is_kept[[]docker[]]",
    # what a trial leaves is read back by the same reader on the host whatever the runtime: the local
    # runtime's stay (and the unsandboxed one's)
    "tests/security/test_readback.py::*[[]docker[]]",
    "tests/security/test_readback.py::*[[]docker-*",
    # the cluster drills (the runtime contract on the cluster and its launch errors stay)
    "tests/test_ray.py::test_a_trial_killed_with_its_node_resumes_*",
    "tests/test_ray.py::test_the_cluster_going_away_mid_run_*",
    "tests/test_ray.py::test_the_example_models_run_two_trials_at_once_on_the_cluster",
    "tests/test_ray.py::test_a_node_that_dies_under_a_trial_takes_nothing_with_it",
    "tests/test_ray.py::test_a_trial_no_node_can_take_fails_*",
    "tests/test_ray.py::test_a_node_without_the_data_mapped_*",
    # PyTorch on both runtimes: the Lightning script's kill and resume, and the local styles, stay
    "tests/test_torch_runtimes.py::test_a_training_killed_mid_epoch_*[[]cnn.py-*",
    "tests/test_torch_runtimes.py::test_a_training_killed_mid_epoch_*[[]lit.py-docker[]]",
    "tests/test_torch_ahead.py::*",  # the Keras trial started ahead stays (test_ahead)
    "tests/test_torch_runtimes.py::test_each_style_s_own_metric_*",  # the corpus reads each kind of metric
    "tests/test_torch_runtimes.py::test_each_style_s_model_is_given_back_*[[]docker[]]",  # local's stays
    "tests/test_torch_model.py::test_a_model_torch_export_refuses_*",
    # signals: SIGTERM to the group on both runtimes stays; to the process alone, and SIGINT, here
    "tests/test_signals.py::test_a_signal_stops_the_training_*[[]local-sigterm[]]",
    "tests/test_signals.py::test_a_signal_stops_the_training_*[[]local-sigint[]]",
    "tests/test_signals.py::test_an_aborted_jenkins_job_4_*",
    "tests/test_signals.py::test_a_training_that_ends_while_mlops_is_away_*",  # kill -9 of mlops run stays
    # as pushed: the history read by epoch stays; the loop that adds layers is the corpus's too
    "tests/test_as_pushed.py::*[[]while_accuracy_adds_layers[]]",
    # the first attempt's metric kept after a retry's timeout: the retry itself stays (test_early_stop)
    "tests/test_early_stop.py::test_a_metric_measured_before_the_failure_is_kept_*",
    # the improvement after a regression: the regression itself stays
    "tests/test_regressions.py::test_the_commit_that_restores_the_width_*",
    # a model saved by the script itself, and a custom layer: the evaluated network and the restored epoch
    # stay
    "tests/test_model_saving.py::test_a_script_that_saves_its_own_model_h5_*",
    "tests/test_model_saving.py::test_a_custom_layer_keras_cannot_rebuild_*",
    # the second runtime of scenarios that are not about the runtime
    "tests/test_datasets.py::test_mnist_under_its_own_cache_name_*",  # the corpus's mnist_custom_cache_name
    "tests/test_tune_file.py::*[[]docker[]]",
    "tests/test_derived_envs.py::*-docker[]]",
    "tests/test_prompts.py::*[[]docker[]]",
    # every weak model's model measured again: the example models' are, in test_pipeline and test_model_out
    "tests/test_model_loads.py::test_weak_models_give_back_a_model_that_measures_what_was_reported",
    # MLflow: the scikit-learn flavour and "logged once" stay
    "tests/test_mlflow.py::test_a_keras_model_is_logged_with_the_keras_flavour_*",
    "tests/test_mlflow.py::test_per_epoch_metrics_of_a_keras_trial_are_logged_by_step",
    "tests/test_mlflow.py::test_a_run_and_its_trials_are_logged_as_nested_runs_*",
    # the report's learning curves (its plots stay), the live line at a terminal (progress's own tests stay)
    "tests/test_report.py::test_learning_curves_come_from_the_epochs_of_each_trial",
    "tests/test_terminal.py::test_mlops_run_at_a_terminal_*",
    # the proposals on real Keras models (their rules are tested on sources in make test)
    "tests/test_proposals.py::test_a_real_model_whose_loss_does_not_fall_*",
    "tests/test_proposals.py::test_the_lenet_that_relies_on_adadelta_s_old_default_*",
)


def in_full(nodeid: str) -> bool:
    """Whether the test of ``nodeid`` runs in `make test-full` rather than `make test`."""
    return any(fnmatchcase(nodeid, pattern) for pattern in FULL)


def runtime_matrix(names: Iterable[str], in_make_test: set[tuple[str, str]], id_first: str) -> list[Any]:
    """Every name on both runtimes, as parameters (name, runtime); the pairs not in ``in_make_test`` marked
    ``full``. ``id_first``: "name" ("digits-local") or "runtime" ("local-digits")."""
    pairs = []
    for name in sorted(names):
        for runtime in ("local", "docker"):
            marks = [pytest.mark.docker] if runtime == "docker" else []
            if (name, runtime) not in in_make_test:
                marks.append(pytest.mark.full)
            ident = f"{name}-{runtime}" if id_first == "name" else f"{runtime}-{name}"
            pairs.append(pytest.param(name, runtime, marks=marks, id=ident))
    return pairs
