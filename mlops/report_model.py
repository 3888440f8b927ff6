"""The report's part about the model a run gives back: a link to the file, its card, and what the verdict
says when it is not usable (not saved, did not load)."""

from __future__ import annotations

import html
import json
from typing import Any

from mlops.ledger import RunRecord
from mlops.model_store import human, read_card, verdict
from mlops_harness.protocol import MODEL_CARD, MODEL_DIR


def model_verdict(run: RunRecord) -> str:
    """HTML for the verdict box: empty when the model is fine (or the run has none to speak of)."""
    problem = verdict(read_card(run))
    return f'<div class="why model-problem"><b>{html.escape(problem)}</b></div>' if problem else ""


def _input(spec: dict[str, Any] | None) -> str:
    """The input form a model was fitted on, in words (the card's ``input``, from the harness)."""
    if not spec:
        return "not recorded"
    if spec.get("kind") == "array" and isinstance(spec.get("shape"), list):
        shape = ", ".join("any" if d is None else str(d) for d in spec["shape"])
        return f"({shape}) {spec.get('dtype')}"
    columns, dtypes = spec.get("columns"), spec.get("dtypes")
    if spec.get("kind") == "frame" and isinstance(columns, list) and isinstance(dtypes, list):
        return "a table with columns " + ", ".join(f"{c}: {d}" for c, d in zip(columns, dtypes, strict=False))
    return json.dumps(spec)[:500]


def _check(check: dict[str, Any] | None) -> str:
    if not check:
        return "not checked"
    where = check.get("runtime", "?") + (f", image {check['image']}" if check.get("image") else "")
    if check.get("loaded") and check.get("predicted"):
        return f"loaded and predicted {check.get('output_shape')} from a batch of {check.get('batch_rows')} ({where})"
    if check.get("loaded") and check.get("predicted") is None:
        return f"loaded; {check.get('note', 'nothing to predict on')} ({where})"
    return f"failed: {check.get('error')} ({where})"


def model_section(run: RunRecord) -> str:
    """HTML: the model file (linked, relative to the report beside it) and its card."""
    card = read_card(run)
    if card is None:
        return ""
    link = f'<a href="{MODEL_DIR}/{MODEL_CARD}">{MODEL_DIR}/{MODEL_CARD}</a>'
    if not card.get("file"):
        return (
            f'<h2>The model</h2><p class="err">{html.escape(str(card.get("error")))}</p><p>Card: {link}</p>'
        )
    name = f"{MODEL_DIR}/{card['file']}"
    metric = card.get("metric") or {}
    trial = card.get("trial") or {}
    versions = ", ".join(f"{k} {v}" for k, v in (card.get("versions") or {}).items())
    rows = [
        ("file", f'<a href="{html.escape(name)}">{html.escape(name)}</a> ({human(int(card.get("size_bytes") or 0))})'),
        ("load it", f"<code>{html.escape(str(card.get('load')))}</code>"),
        ("what", html.escape(f"{card.get('class')}: a {card.get('framework')} model in the {card.get('format')} format")),
        ("metric", html.escape(f"{metric.get('name')} {metric.get('value'):.4f} from {metric.get('source')}, "
                               f"target {metric.get('target')}" if metric.get("value") is not None else "-")),
        ("input at fit", html.escape(_input(card.get("input")))),
        ("trained by", html.escape(f"trial {trial.get('number')}: " + ("; ".join(trial.get("changes") or []) or "as pushed"))),
        ("versions", html.escape(versions)),
        ("load check", html.escape(_check(card.get("check")))),
        ("sha256", f"<code>{html.escape(str(card.get('sha256')))}</code>"),
        ("card", link),
    ]  # fmt: skip
    table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<h2>The model</h2><table class="card">{table}</table>'
