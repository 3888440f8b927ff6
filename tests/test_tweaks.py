"""Tweaks (golden before/after pairs for every codemod and code style), shape checks, the k chooser and the
strategies that propose trials."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits, make_blobs
from sklearn.metrics import silhouette_score

from mlops.domain import Kind, TrialStatus
from tweak.codemods import (
    REGISTRY,
    AddConvBlock,
    AddDenseLayer,
    AddRescaling,
    RegularizeLinear,
    ScaleUnits,
    SetEpochs,
    SetEstimatorParam,
    TweakNotApplicable,
    apply_tweaks,
    tweak_from_json,
)
from tweak.facts import check_variant, model_facts
from tweak.kmeans import choose_k
from tweak.strategies import TPE, Ladder, Past, SearchState

GOLDEN = Path(__file__).parent / "golden" / "tweak"
CASES = json.loads((GOLDEN / "cases.json").read_text())


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['case']}-{c['tweak']}")
def test_golden(case):
    before = (GOLDEN / f"{case['case']}.before.py").read_text()
    tweak = REGISTRY[case["tweak"]](**case["params"])
    if "not_applicable" in case:
        with pytest.raises(TweakNotApplicable, match=re.escape(case["not_applicable"])):
            tweak.apply(before)
        return
    after = tweak.apply(before)
    assert after == (GOLDEN / f"{case['out']}.after.py").read_text()
    compile(after, case["out"], "exec")


def test_every_tweak_has_a_golden_case_and_a_description():
    assert {c["tweak"] for c in CASES} == set(REGISTRY)
    assert all(cls.DESCRIPTION for cls in REGISTRY.values())


def test_tweaks_apply_in_order_and_say_what_they_did_or_why_not():
    before = (GOLDEN / "seq_list.before.py").read_text()
    result = apply_tweaks(before, [ScaleUnits(factor=16), AddConvBlock(), SetEpochs(epochs=30)])
    assert result.applied == ["hidden units 4 -> 64", "epochs 3 -> 30"]
    assert result.skipped == [("add_conv_block", "no convolution layer to add another like it")]
    assert "Dense(64" in result.source and "EPOCHS = 30" in result.source


def test_facts_of_a_model():
    facts = model_facts((GOLDEN / "seq_add.before.py").read_text())
    assert [(layer.kind, layer.units or layer.filters) for layer in facts.layers] == [
        ("conv", 8),
        ("pool", None),
        ("flatten", None),
        ("dense", 16),
        ("dense", 10),
    ]
    assert facts.epochs == 2 and facts.batch_size == 32 and facts.optimizer == "adam"
    assert facts.input_shape == (28, 28, 1)
    assert model_facts((GOLDEN / "seq_list.before.py").read_text()).epochs == 3  # read through EPOCHS


def test_a_variant_with_too_many_poolings_for_its_input_is_caught_before_training():
    source = """
from keras import layers, models
model = models.Sequential([
    layers.Input(shape=(8, 8, 1)),
    layers.Conv2D(16, (3, 3), activation="relu"),
    layers.MaxPooling2D((2, 2)),
    layers.MaxPooling2D((2, 2)),
    layers.MaxPooling2D((2, 2)),
    layers.Flatten(),
    layers.Dense(10, activation="softmax"),
])
"""
    problem = check_variant(source)
    assert problem is not None and "MaxPooling2D at line 8" in problem and "1x1" in problem
    assert check_variant(source.replace("    layers.MaxPooling2D((2, 2)),\n", "", 2)) is None
    assert "does not parse" in check_variant("model = Sequential([\n")


def curve(X, ks=range(2, 11)):
    models = [KMeans(n_clusters=k, n_init=4, random_state=0).fit(X) for k in ks]
    return list(ks), [m.inertia_ for m in models], [silhouette_score(X, m.labels_) for m in models]


def test_k_is_the_elbow_where_the_curve_has_a_clear_knee():
    X, _ = make_blobs(n_samples=500, centers=4, cluster_std=0.5, random_state=3)
    choice = choose_k(*curve(X))
    assert (choice.k, choice.rule) == (4, "elbow")


def test_k_falls_back_to_the_silhouette_where_there_is_no_clear_knee():
    choice = choose_k(*curve(load_digits().data))
    assert choice.rule == "silhouette"
    assert "not clear" in choice.reason or "no knee" in choice.reason
    ks, _, sils = curve(load_digits().data)
    assert choice.k == ks[sils.index(max(sils))]


def state(kind=Kind.ANN, framework="keras", number=1, past=(), source="seq_list", **kw) -> SearchState:
    facts = model_facts((GOLDEN / f"{source}.before.py").read_text())
    return SearchState(
        kind=kind, framework=framework, facts=facts, target=0.8, seed=0, number=number, past=list(past), **kw
    )


def test_ladder_adds_the_hand_made_steps_one_by_one():
    ladder = Ladder()
    first, second = ladder.propose(state(number=1)), ladder.propose(state(number=2))
    assert first.tweaks == [AddDenseLayer(units=64)]
    assert second.tweaks == [AddDenseLayer(units=64), SetEpochs(epochs=9)]
    assert ladder.propose(state(number=6)) is None


def test_tpe_starts_with_an_informed_guess_then_proposes_the_same_trials_for_the_same_history():
    tpe = TPE()
    first = tpe.propose(state(number=1))
    assert ScaleUnits(factor=32.0) in first.tweaks and SetEpochs(epochs=20) in first.tweaks
    past = [
        Past(0, [], TrialStatus.SUCCEEDED, 0.3),
        Past(1, first.tweaks, TrialStatus.SUCCEEDED, 0.7, first.params),
    ]
    again = [tpe.propose(state(number=2, past=past)).tweaks for _ in range(2)]
    assert again[0] == again[1]  # fixed seeds: a resumed run proposes what it would have proposed


def test_kmeans_proposals_follow_the_chooser_then_the_next_best_silhouettes():
    X, _ = make_blobs(n_samples=500, centers=4, cluster_std=0.5, random_state=3)
    ks, inertias, sils = curve(X)
    measured = {"n_clusters": 2, "curve": {"k": ks, "inertia": inertias, "silhouette": sils}}
    s = state(kind=Kind.KMEANS, framework="sklearn", source="sklearn_kmeans", kmeans=measured)
    first = TPE().propose(s)
    assert first.params == {"n_clusters": 4} and "elbow" in first.note
    tried = [
        Past(0, [], TrialStatus.SUCCEEDED, 0.5),
        Past(1, first.tweaks, TrialStatus.SUCCEEDED, 0.79, first.params),
    ]
    second = Ladder().propose(
        state(
            kind=Kind.KMEANS,
            framework="sklearn",
            source="sklearn_kmeans",
            number=2,
            past=tried,
            kmeans=measured,
        )
    )
    assert second.params["n_clusters"] not in (2, 4)


def test_tweaks_are_recorded_and_read_back_typed_and_an_unknown_one_is_a_programming_error():
    tweak = REGISTRY["set_estimator_param"](
        estimators=["MLPClassifier"], param="hidden_layer_sizes", value=[8]
    )
    assert tweak.to_json() == [
        "set_estimator_param",
        {"estimators": ["MLPClassifier"], "param": "hidden_layer_sizes", "value": [8]},
    ]
    assert tweak_from_json(tweak.to_json()) == tweak
    with pytest.raises(ValueError, match="unknown tweak 'scale_filterz'"):
        tweak_from_json(["scale_filterz", {"factor": 2}])
    with pytest.raises(ValueError, match="cannot take"):
        tweak_from_json(["set_epochs", {"epoch": 2}])


def test_tpe_regularizes_instead_of_adding_units_when_trial_0_overfits():
    tpe = TPE()
    overfit = [Past(0, [], TrialStatus.SUCCEEDED, 0.6, gap=0.3)]
    first = tpe.propose(state(number=1, past=overfit))
    assert [t.NAME for t in first.tweaks if t.NAME in ("add_dropout", "scale_units")] == ["add_dropout"]
    assert "dropout, not units" in first.note
    fitting = [Past(0, [], TrialStatus.SUCCEEDED, 0.6, gap=0.02)]
    assert "add_dropout" not in [t.NAME for t in tpe.propose(state(number=1, past=fitting)).tweaks]


CNN_30_FILTERS = """
from keras import layers, models
model = models.Sequential([
    layers.Input(shape=(8, 8, 1)),
    layers.Conv2D(30, (3, 3), activation="relu"),
    layers.Flatten(),
    layers.Dense(10, activation="softmax"),
])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(X, y, epochs=1)
"""


def test_tpe_does_not_propose_a_change_that_does_not_matter_and_sizes_epochs_to_the_budget():
    facts = model_facts(CNN_30_FILTERS)
    base = dict(kind=Kind.CNN, framework="keras", facts=facts, target=0.8, seed=0, number=1)
    first = TPE().propose(SearchState(**base, past=[Past(0, [], TrialStatus.SUCCEEDED, 0.1)]))
    assert not any(t.NAME == "scale_filters" for t in first.tweaks)  # 30 -> 32 filters: nothing that matters
    assert SetEpochs(epochs=20) in first.tweaks
    timed = SearchState(
        **base, past=[Past(0, [], TrialStatus.SUCCEEDED, 0.1)], seconds_per_epoch=10.0, seconds_left=80.0
    )
    assert SetEpochs(epochs=4) in TPE().propose(timed).tweaks  # half of 80 s at 10 s an epoch


def test_tpe_puts_a_rescaling_layer_in_front_of_pixels_trial_0_trained_on_unscaled():
    tpe = TPE()
    pixels = {"fit": 0, "samples": 60000, "dtype": "uint8", "min": 0.0, "max": 255.0}
    past = [Past(0, [], TrialStatus.SUCCEEDED, 0.09)]
    first = tpe.propose(state(number=1, past=past, inputs=pixels))
    assert AddRescaling(divisor=255.0) in first.tweaks
    assert "inputs in 0..255: a Rescaling layer in front" in first.note
    variant = apply_tweaks((GOLDEN / "seq_list.before.py").read_text(), first.tweaks).source
    assert "Rescaling(1.0 / 255" in variant
    # Every later proposal keeps it; inputs already in 0..1 (or 0..16 digits) get none.
    tried = [*past, Past(1, first.tweaks, TrialStatus.SUCCEEDED, 0.7, first.params)]
    assert AddRescaling(divisor=255.0) in tpe.propose(state(number=2, past=tried, inputs=pixels)).tweaks
    for scaled in ({"min": 0.0, "max": 1.0}, {"min": 0.0, "max": 16.0}, {"min": -3.2, "max": 200.0}):
        assert not any(t.NAME == "add_rescaling" for t in tpe.propose(state(number=1, inputs=scaled)).tweaks)


TREE_FROM_PROMPT = """
from sklearn.datasets import load_diabetes
from sklearn.tree import DecisionTreeRegressor

depth = int(input("max depth: "))
X, y = load_diabetes(return_X_y=True)
model = DecisionTreeRegressor(max_depth=depth, random_state=0).fit(X, y)
print(model.predict(X[:1]))
"""


def test_a_regressor_gets_its_regularization_and_its_trees_proposed_and_the_variant_runs():
    s = state(kind=Kind.OTHER, framework="sklearn", source="sklearn_regression")
    first = TPE().propose(s)
    assert RegularizeLinear(alpha=0.1) in first.tweaks  # LinearRegression's one knob: a Ridge penalty
    assert (
        SetEstimatorParam(estimators=["RandomForestRegressor"], param="n_estimators", value=200)
        in first.tweaks
    )
    variant = apply_tweaks((GOLDEN / "sklearn_regression.before.py").read_text(), first.tweaks)
    assert not variant.skipped and "Ridge(alpha=0.1, fit_intercept=True)" in variant.source
    compile(variant.source, "variant", "exec")
    # TPE then searches the strengths, depths and numbers of trees (a depth of None among them).
    space = TPE().space(s)
    assert set(space) == {"ridge_alpha", "n_estimators", "max_depth"}
    assert None in space["max_depth"].choices
    tried = [
        Past(0, [], TrialStatus.SUCCEEDED, 0.41),
        Past(1, first.tweaks, TrialStatus.SUCCEEDED, 0.45, first.params),
    ]
    later = TPE().propose(
        state(kind=Kind.OTHER, framework="sklearn", source="sklearn_regression", number=2, past=tried)
    )
    assert later is not None and later.tweaks and later.tweaks != first.tweaks
    steps = Ladder().propose(s)
    assert steps is not None and steps.tweaks == first.tweaks[:1]


def test_a_depth_the_script_reads_from_a_prompt_is_tuned_through_its_answer_not_in_the_code():
    facts = model_facts(TREE_FROM_PROMPT)
    s = SearchState(kind=Kind.OTHER, framework="sklearn", facts=facts, target=0.8, seed=0, number=1, past=[])
    assert "max_depth" not in TPE().space(s)
    assert TPE().propose(s) is None  # nothing in the code to turn, and no prompt measured yet
