"""``mlops datasets import FILE...`` and ``mlops datasets list``: the data sets every trial reads offline
(the store is :mod:`mlops.datasets`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from jobs.args import add_common, settings_from
from mlops import datasets
from mlops.errors import DatasetError
from mlops.model_store import human
from mlops.progress import Progress


def add_parser(command: Callable[[str, str, str], argparse.ArgumentParser]) -> None:
    p = command(
        "datasets",
        "import data set files once, for every trial to read instead of downloading; or list them",
        "mlops datasets import mnist.npz --as mnist_local_copy.npz",
    )
    p.add_argument("action", choices=["import", "list"], help="import files, or list the imported ones")
    p.add_argument(
        "files",
        nargs="*",
        type=Path,
        metavar="FILE",
        help="the files to import (default none; import needs at least one)",
    )
    p.add_argument(
        "--as",
        dest="name",
        metavar="NAME",
        help="the file name the script asks for, e.g. load_data(path=NAME); a folder ending in '/' puts "
        "each file in it under its own name, e.g. MNIST/raw/ (default: the file's own name)",
    )
    p.add_argument(
        "--kind",
        choices=datasets.KINDS,
        default="keras",
        help="whose cache it goes in: Keras's datasets folder, scikit-learn's data home, PyTorch's "
        "TORCH_HOME (default keras)",
    )
    p.add_argument(
        "--replace", action="store_true", help="replace a data set of that name that has other content"
    )
    add_common(p)


def cmd_datasets(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    workspace = settings_from(args).workspace
    if args.action == "list":
        if args.files or args.name:
            raise DatasetError("mlops datasets list takes no files and no --as")
        rows = [
            [d.name, d.kind, human(d.size), d.sha256[:12], d.imported, problem or d.where]
            for d, problem in datasets.listing(workspace)
        ]
        Progress(out).table(
            f"data sets in {datasets.store_dir(workspace)}",
            ["name", "kind", "size", "sha256", "imported", "trials read it at"],
            rows,
        )
        return 0
    if not args.files:
        raise DatasetError("mlops datasets import needs the files to import")
    folder = args.name if args.name and args.name.endswith("/") else None
    if args.name and not folder and len(args.files) > 1:
        raise DatasetError(f"--as names one file, and {len(args.files)} were given (a folder ends in '/')")
    for file in args.files:
        name = f"{folder}{file.name}" if folder else args.name
        dataset, new = datasets.import_file(workspace, file, name, args.kind, args.replace)
        said = "imported" if new else "already imported (same content)"
        out.write(
            f"{said}: {dataset.kind} data set {dataset.name} ({human(dataset.size)}, sha256 "
            f"{dataset.sha256[:12]}), read by trials at {dataset.where}\n"
        )
    return 0
