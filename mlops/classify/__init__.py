"""Job 2's classifier: what each pushed script trains, and so which image runs it, from its syntax tree.

- :mod:`~mlops.classify.facts` gathers facts: imports resolved through aliases, names used, with lines;
- :mod:`~mlops.classify.rules` decides from them (pure functions; the names come from
  :mod:`mlops.vocabulary`);
- :mod:`~mlops.classify.files` reads files: encodings, notebooks, bad input, local modules imported;
- :mod:`~mlops.classify.entry_points` finds a repository's training scripts.

Printing the results is the CLI's (``jobs/views.py``).
"""

from __future__ import annotations

from mlops.classify.entry_points import candidate_files, classify_paths, find_entry_points
from mlops.classify.files import classify_file, classify_source, decode, source_text
from mlops.classify.rules import Api, Classification, Family, Framework, Reason, decide, image_for, trains

__all__ = [
    "Api",
    "Classification",
    "Family",
    "Framework",
    "Reason",
    "candidate_files",
    "classify_file",
    "classify_paths",
    "classify_source",
    "decide",
    "decode",
    "find_entry_points",
    "image_for",
    "source_text",
    "trains",
]
