"""docs/configuration.md, generated from the ``Settings`` definition: ``python -m jobs.config_doc``.

Each setting's name, type, default, environment variable, ``mlops.toml`` key and flags come from
``mlops/config.py`` and the flags of ``jobs/args.py``; its meaning from the comment beside (or above) the
field and the flag's help. ``tests/test_docs.py`` fails when the committed page differs from this output, so
a setting added, renamed or given another default is documented by running ``make docs``.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import enum
import io
import tokenize
import types
import typing
from pathlib import Path
from typing import Any

from jobs.args import Parser, add_common, add_run_flags
from mlops import config
from mlops.config import FLAGS, Settings

COMMAND = "make docs"  # or: python -m jobs.config_doc > docs/configuration.md

HEAD = """\
# Configuration: every setting, its default, and where to set it

<!-- Generated from the Settings definition in mlops/config.py and the flags of jobs/args.py by
`{command}` (python -m jobs.config_doc > docs/configuration.md). Do not edit: tests/test_docs.py fails
when this file differs from what the generator writes. -->

You want a run to aim higher, train longer, use other limits, or run somewhere else: set it once for a
machine in `mlops.toml`, for a shell or a Jenkins job in an `MLOPS_*` variable, or for one command with a
flag.

## How settings are read

Settings are read once, when a command starts: `mlops.toml` in the current folder (or `--config FILE`, or
`MLOPS_CONFIG`), then `MLOPS_*` environment variables, then flags; the last one wins. In `mlops.toml` the
settings sit at the top level or in an `[mlops]` table; a `-` in a key reads as `_`. Lists are TOML arrays
in the file and comma-separated in a variable; a yes/no variable takes `1`, `true`, `yes`, `on` or `0`,
`false`, `no`, `off`. The settings object is then passed down: nothing reads the environment later.

```toml
# mlops.toml
[mlops]
target = 0.9
max_trials = 8
runtime = "local"
trial_env = ["CUDA_VISIBLE_DEVICES"]

[mlops.data]
"/mnt/fashion_mnist" = "/srv/datasets/fashion"
```

Every value is checked when the settings are read, before anything is pulled: an unknown strategy, runtime
or cluster metric, a target outside (0, 1], a non-positive or non-finite number (`cpus` at least 0.01), a
`trial_env` name that is not a variable name or one the sandbox sets (`PATH`, `HOME`, ...), a relative
`data_roots` folder, a file that is not UTF-8, an unknown key in `mlops.toml`, ... exits 2 with one line
naming the setting, where it came from (the file, the variable or the flag), the value and what is allowed
(`strategy must be one of tpe, ladder but got 'tpee'`).

A run remembers the settings that define it ({identity}): resuming it with other values is refused with a
message saying which, instead of mixing two searches.

## Every setting

"""

TAIL = """
## Why `stop_at_target` is on

`stop_at_target` is on by default because a run ends at its target: the epochs a trial trains after its
validation accuracy is past it buy nothing the user asked for, and on data of real size they are most of the
trial's time. The margin of {margin:g} is there because the metric is usually the script's own test score,
which lands a little below the validation split about as often as above it; one more epoch costs less than a
trial that stopped at 0.801 and measured 0.79. A fit without validation data (`fit(X, y, epochs=30)`, common
in pushed scripts) stops on its training accuracy, with a wider margin (0.10), because it overstates what the
held-out test score will be. Turn it off (`--no-stop-at-target`) to train past the target on purpose, and
`patience = 0` to train every epoch asked for.

## More on some settings

- `patience` and `stop_at_target` change the tuning trials' Keras trainings only: trial 0 runs as pushed,
  every epoch it asks for, unless the pushed `mlops.yaml` says otherwise with `early_stop:`
  ([harness.md](harness.md)).
- `runtime`: `auto` uses Docker when an engine answers and says so; `unsandboxed` applies to `local` only
  ([runtimes.md](runtimes.md)).
- `gpus`: Docker's device requests and the CUDA image; Ray's `num_gpus` ([scale.md](scale.md)).
- `storage`: with `--runtime ray` only, e.g. `s3://bucket/prefix` ([scale.md](scale.md)).
- `repositories`: what `mlops serve` trains, matched by a push's clone URL or `owner/name`; a local path or
  a `file://` URL only when listed as such ([webhook.md](webhook.md)).
- `data` and `data_roots`: a site's own folders, and where a push's `data:` may point ([data.md](data.md),
  [security.md](security.md)).
- `disk_mb`, `disk_files`, `pids`, `memory_mb`, `timeout_s`: a trial's limits, and how to raise them
  ([security.md](security.md#limits-that-are-the-trials-own)).
- `keep_models`, `keep_checkpoints`, `keep_work`: the space a run keeps ([model.md](model.md)).

## Not settings of this file

- What a pushed repository says about itself (entry points, `inputs:`, `data:`, `tune_file:`, `env:`,
  `install:`, `early_stop:`) is its own `mlops.yaml`: [data.md](data.md), [classify.md](classify.md),
  [harness.md](harness.md).
- Notifications (`MLOPS_SMTP_*`, `MLOPS_MAIL_*`, `MLOPS_WEBHOOK_URL`): [notify.md](notify.md); the webhook's
  secret (`MLOPS_WEBHOOK_SECRET`): [webhook.md](webhook.md); MLflow (`MLFLOW_TRACKING_URI`):
  [report.md](report.md); the package index: [environments.md](environments.md).
"""


def comments() -> dict[str, str]:
    """Each field's comment in ``mlops/config.py``: the one on its line, else the lines just above it."""
    source = Path(config.__file__).read_text(encoding="utf-8")
    tree = ast.parse(source)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Settings")
    lines = source.splitlines()
    by_line: dict[int, str] = {}
    alone: set[int] = set()  # lines that hold a comment and nothing else
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            by_line[tok.start[0]] = tok.string.lstrip("#").strip()
            if lines[tok.start[0] - 1].lstrip().startswith("#"):
                alone.add(tok.start[0])
    out: dict[str, str] = {}
    for node in cls.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        span = range(node.lineno, (node.end_lineno or node.lineno) + 1)
        inline = [by_line[n] for n in span if n in by_line]
        above: list[str] = []
        line = node.lineno - 1
        while line in alone:
            above.insert(0, by_line[line])
            line -= 1
        out[node.target.id] = " ".join(above + inline)
    return out


def flags() -> dict[str, list[tuple[str, str]]]:
    """Each setting's flags of ``mlops run`` (and the Jenkins entry points), with their help."""
    parser = Parser()
    add_common(parser)
    add_run_flags(parser)
    out: dict[str, list[tuple[str, str]]] = {}
    for action in parser._actions:
        if action.option_strings and not isinstance(action, argparse._HelpAction):
            name = max(action.option_strings, key=len)
            out.setdefault(action.dest, []).append((name, action.help or ""))
    return out


def type_name(hint: Any) -> str:
    """A field's type as a reader says it: ``int``, ``float or none``, ``list of text``, ``tpe or ladder``."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    optional = isinstance(hint, types.UnionType) and len(args) < len(typing.get_args(hint))
    base = args[0] if optional and len(args) == 1 else hint
    if isinstance(base, type) and issubclass(base, enum.Enum):
        text = " or ".join(f"`{m.value}`" for m in base)
    elif typing.get_origin(base) is tuple:
        item = typing.get_args(base)[0]
        text = "list of text" if item is str else "table of paths (a TOML table; YAML text in the variable)"
    elif base is Path:
        text = "folder"
    elif base is str:
        text = "text"
    else:
        text = getattr(base, "__name__", str(base))
    return f"{text}, or none" if optional else text


def default_text(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, enum.Enum):
        return f"`{value.value}`"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple) and not value:
        return "empty"
    return f"`{value}`"


def row(field: dataclasses.Field[Any], hint: Any, comment: str, flagged: list[tuple[str, str]]) -> str:
    name = field.name
    where = [f"`{name}`", f"`MLOPS_{name.upper()}`"] + [f"`{flag}`" for flag, _ in flagged]
    meaning = [comment.rstrip(".")] if comment else []
    meaning += [text for _, text in flagged if text]
    if name in FLAGS and not flagged:
        where.append(f"`{FLAGS[name]}`")
    cell = "; ".join(meaning) or "(no comment in mlops/config.py)"
    return f"| {' / '.join(where)} | {type_name(hint)} | {default_text(field.default)} | {cell} |"


def render() -> str:
    hints = typing.get_type_hints(Settings)
    notes = comments()
    by_dest = flags()
    lines = [
        HEAD.format(command=COMMAND, identity=", ".join(Settings.IDENTITY)),
        "| `mlops.toml` key / variable / flags | type | default | meaning |",
        "|---|---|---|---|",
    ]
    for field in dataclasses.fields(Settings):
        if field.name in config.NOT_SETTINGS:
            continue
        cell = row(field, hints[field.name], notes.get(field.name, ""), by_dest.get(field.name, []))
        lines.append(cell.replace("\n", " "))
    common = [f"`{flag}`: {text}" for dest in ("config",) for flag, text in by_dest.get(dest, [])]
    lines.append("")
    lines.append("Also on every command: " + "; ".join(common) + ".")
    return "\n".join(lines) + "\n" + TAIL.format(margin=config.STOP_MARGIN)


def main() -> None:
    print(render(), end="")


if __name__ == "__main__":
    main()
