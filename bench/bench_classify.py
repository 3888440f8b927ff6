"""Prints how the classifier compares with the rules hand-made pipelines use, and how fast it is.

    python bench/bench_classify.py [--runs 30]

Accuracy is measured on the labelled corpus (tests/fixtures/classify/labels.json), on the kind. The
rules read the raw file text, as a grep in a pipeline does:
  * "'Conv2D' in code": cnn when the text contains Conv2D, else the one default kind that scores best
    for the rule (printed);
  * four-way grep: cnn if "Conv" appears, else kmeans if "KMeans", else ann if "Dense", "Linear" or
    "MLP", else other.
Speed: median time of classify_source on files of about 200 lines, built by joining whole corpus scripts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mlops.classify import classify_file, classify_source  # noqa: E402

CORPUS = ROOT / "tests" / "fixtures" / "classify"
KINDS = ("cnn", "ann", "kmeans", "other")


def conv2d_rule(default: str) -> Callable[[str], str]:
    return lambda text: "cnn" if "Conv2D" in text else default


def four_way_grep(text: str) -> str:
    if "Conv" in text:
        return "cnn"
    if "KMeans" in text:
        return "kmeans"
    if any(word in text for word in ("Dense", "Linear", "MLP")):
        return "ann"
    return "other"


def accuracy(predict: Callable[[Path, str], str], labels: dict[str, dict]) -> tuple[float, list[str]]:
    misses = []
    for name, lab in labels.items():
        path = CORPUS / name
        got = predict(path, path.read_bytes().decode("utf-8", errors="replace"))
        if got != lab["kind"]:
            misses.append(f"{name} ({got} for {lab['kind']})")
    return 1 - len(misses) / len(labels), misses


def samples(target_lines: int = 200) -> list[str]:
    """Files of about ``target_lines`` lines: whole corpus scripts joined, each sample starting at
    another script. Scripts that do not parse as Python 3 are left out (they take the slower path)."""
    scripts = []
    for p in sorted(CORPUS.glob("*.py")):
        text = p.read_bytes().decode("utf-8", errors="replace")
        try:
            compile(text, str(p), "exec", flags=0x400)  # ast.PyCF_ONLY_AST
        except SyntaxError:
            continue
        scripts.append(text)
    out = []
    for start in range(len(scripts)):
        parts, n, i = [], 0, start
        while n < target_lines:
            text = scripts[i % len(scripts)]
            parts.append(text)
            n += text.count("\n")
            i += 1
        out.append("\n".join(parts))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30, help="timed passes over the samples")
    args = ap.parse_args()
    labels = json.loads((CORPUS / "labels.json").read_text())

    ours, our_misses = accuracy(lambda p, _t: str(classify_file(p).kind), labels)
    best_default, conv_acc, conv_misses = None, -1.0, []
    for default in KINDS:
        acc, misses = accuracy(lambda _p, t, d=default: conv2d_rule(d)(t), labels)
        if acc > conv_acc:
            best_default, conv_acc, conv_misses = default, acc, misses
    grep_acc, grep_misses = accuracy(lambda _p, t: four_way_grep(t), labels)

    print(f"corpus: {len(labels)} files ({sum(n.endswith('.ipynb') for n in labels)} notebooks)")
    print()
    print(f"{'rule':42s} {'kind accuracy':>14s} {'misses':>7s}")
    print(f"{'mlops classify (syntax tree)':42s} {ours:14.1%} {len(our_misses):7d}")
    print(
        f"{repr('Conv2D') + ' in code, else ' + str(best_default):42s} {conv_acc:14.1%} {len(conv_misses):7d}"
    )
    print(f"{'four-way grep (Conv/KMeans/Dense...)':42s} {grep_acc:14.1%} {len(grep_misses):7d}")
    print()
    print("our misses:", ", ".join(our_misses) or "none")
    print("four-way grep misses:", ", ".join(grep_misses))

    texts = samples()
    lines = statistics.median(t.count("\n") + 1 for t in texts)
    for t in texts:  # warm up
        classify_source(t)
    times = []
    for _ in range(args.runs):
        for t in texts:
            start = time.perf_counter()
            classify_source(t)
            times.append(time.perf_counter() - start)
    times.sort()
    print()
    print(
        f"speed: {len(texts)} files of median {lines:.0f} lines, {args.runs} runs: "
        f"median {statistics.median(times) * 1e3:.2f} ms per file, "
        f"p90 {times[int(len(times) * 0.9)] * 1e3:.2f} ms (goal < 5 ms)"
    )
    whole = []
    for _ in range(3):
        for name in labels:
            start = time.perf_counter()
            classify_file(CORPUS / name)
            whole.append(time.perf_counter() - start)
    print(
        f"corpus files as they are (read, decode, notebooks): median {statistics.median(whole) * 1e3:.2f} ms"
    )


if __name__ == "__main__":
    main()
