"""Which framework's rewrites and facts a source gets, decided here and nowhere else.

The framework of a source is job 2's judgement: the run records it (``RunRecord.framework``), and a
caller that has it passes it; otherwise the classifier is asked again about the source itself, from its
syntax tree (the same rules, so the same answer unless the model is in a local module the script
imports: then pass the recorded one). Every tweak and the facts switch on :func:`code_of` only.
"""

from __future__ import annotations

from mlops.classify import Framework, classify_source

# The code each framework's sources are read and rewritten as. PyTorch has its own rewrites and facts.
# Keras's are the default: they look for Keras calls (layers, compile, fit) and say what they did not
# find, which is also the right answer for scikit-learn code and code of no known framework (the
# scikit-learn tweak works on any code: it only looks for estimators by name).
CODE_OF: dict[Framework, Framework] = {
    Framework.PYTORCH: Framework.PYTORCH,
    Framework.KERAS: Framework.KERAS,
    Framework.TF_KERAS: Framework.KERAS,
    Framework.TENSORFLOW: Framework.KERAS,
    Framework.SKLEARN: Framework.KERAS,
    Framework.NONE: Framework.KERAS,
}


def framework_of(source: str, recorded: Framework | str | None = None) -> Framework:
    """The framework of ``source``: the recorded classification when given, else the classifier's."""
    if recorded:
        try:
            return Framework(recorded)
        except ValueError:
            pass  # an older ledger's spelling: ask the classifier
    try:
        return Framework(classify_source(source).framework)
    except ValueError:
        return Framework.NONE


def code_of(source: str, recorded: Framework | str | None = None) -> Framework:
    """The framework whose rewrites and facts apply to ``source`` (a key of every tweak's REWRITES)."""
    return CODE_OF[framework_of(source, recorded)]
