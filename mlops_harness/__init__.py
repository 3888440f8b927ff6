"""The harness: runs one variant of a user's training script, unchanged, and collects its metric.

It is the entry point of every training image and of the local runtime (``python mlops_harness ...``,
see ``runner.py``), so every module imports nothing but the standard library when the harness starts (the
images do not install mlops). Keras and scikit-learn are instrumented when the script imports them, the
way MLflow's autolog does it: ``keras_hooks`` and ``sklearn_hooks`` are loaded by the post-import hooks
of ``imports`` only then. What crosses to the orchestrator is declared in ``protocol``, the one module of
this package the orchestrator imports.
"""
