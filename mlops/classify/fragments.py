"""Code whose imports are missing: a fragment pasted without them, or a star import of a local module that is
not in the push (``from model_layers import *``). Nothing resolves its layer names to a framework, yet
``Conv2D(...)`` and ``model.fit(...)`` say plainly what it trains. When the facts hold no evidence at all,
the layer names the vocabulary knows are read as Keras's, with a reason that says what is missing, so the
classification has low confidence instead of saying "nothing trains"."""

from __future__ import annotations

from pathlib import Path

from mlops.classify.facts import Facts, Ref
from mlops.vocabulary import KERAS_LAYERS

KERAS_MODELS = frozenset({"Sequential", "Model"})


def guessed_refs(facts: Facts) -> tuple[list[Ref], str]:
    """Keras names for the calls of unknown layer names, and what is missing (empty when nothing is guessed)."""
    local_stars = {i.module for i in facts.imports if i.names == ("*",) and i.module} - set(
        _framework_stars(facts)
    )
    candidates: list[Ref] = list(facts.unbound)
    for ref in facts.refs:  # module.Conv2D through a star import of a module that was not found
        head, _, last = ref.name.rpartition(".")
        if head in local_stars and ref.called:
            candidates.append(Ref(last, ref.line, True))
    guessed = [
        Ref(f"keras.layers.{r.name.rpartition('.')[2]}", r.line, True, "guessed")
        for r in candidates
        if r.name.rpartition(".")[2] in KERAS_LAYERS
    ]
    if not guessed:
        return [], ""
    names = sorted({r.name.rpartition(".")[2] for r in guessed})
    shown = ", ".join(names[:3]) + ("..." if len(names) > 3 else "")
    followed = {Path(f).with_suffix("").as_posix().replace("/", ".") for f in facts.followed}
    missing = sorted(m for m in local_stars if m not in followed)
    if missing:
        why = f"from {missing[0]} import * names a module that is not in the push"
    else:
        why = "nothing imports them (a fragment without its imports?)"
    models = any(r.name.rpartition(".")[2] in KERAS_MODELS for r in candidates)
    read = "a Keras model" if models else "Keras layers"
    return guessed, f"{shown}: {why}; read as {read} from the names alone"


def _framework_stars(facts: Facts) -> list[str]:
    return [
        s for s in facts.stars if s.split(".")[0] in ("keras", "tensorflow", "tf_keras", "torch", "sklearn")
    ]
