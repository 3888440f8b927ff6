"""Folders of the author's machine (``/DLCode``, ``/content/out``) that a script writes to through any
library: found in its syntax tree, made in the trial's ``outside/`` folder and mounted at the path the
script names, on both runtimes; never a system folder, a path this machine has, or a link the trial left."""

from __future__ import annotations

import json
import os
from pathlib import Path

from mlops.project import DataPath
from mlops.runtime.author_folders import folder_of, folders_for, named_paths, plan, with_author_folders
from mlops.runtime.base import TrialSpec
from mlops_harness.protocol import ENV_AUTHOR_FOLDERS

SCRIPT = '''
"""Saves to /docs/not/a/path.h5 (a docstring, not code)."""
import glob, os
import numpy as np
model.save('/DLCode/mnist_model.h5')
np.savetxt("/DLCode/accuracy.txt", [acc])
os.makedirs('/content/out/models', exist_ok=True)
checkpoint = f'/ckpt/run_{i}/weights.h5'
predictions = '/predictions/' + name + '.csv'
relative = f"{base}/models/x.h5"
also_relative = base + '/models/y.h5'
SAVE_DIR = '/models'
joined = os.path.join('/results/run', 'a.txt')
opened = open('/output', 'w')
system = ['/usr/lib/x.so', '/tmp/x.txt', '/etc/hosts', '/proc/self', '/code/train.py', '/trial/x', '/opt/x/y']
patterns = glob.glob('/data2/*.csv'), '/home/$USER/x', '~/x', '/a\\\\b', '/ 2', '/a:b/c'
'''


def folders(source: str) -> list[str]:
    return sorted({f for p in named_paths(source) if (f := folder_of(p)) is not None})


def test_the_folders_a_script_names_are_read_from_its_syntax_tree():
    assert folders(SCRIPT) == [
        "/DLCode",  # model.h5 and accuracy.txt: files in it
        "/ckpt",  # before the placeholder
        "/code",
        "/content/out/models",  # made
        "/etc",
        "/models",  # a bare name at the top: a folder
        "/opt/x",
        "/predictions",  # the start of a sum
        "/proc",
        "/results/run",  # joined
        "/tmp",
        "/trial",
        "/usr/lib",
    ]  # not: the docstring, f"{base}/...", base + "/...", open('/output') (a file at the top), patterns


def test_only_folders_this_machine_lacks_are_made_from_their_outermost_missing_part_never_a_system_one():
    here = {"/root", "/home", "/srv"}
    made = plan(
        [*folders(SCRIPT), "/root/mlopsws", "/root/train_set/out", "/srv/x", "/home/me/project/out", "/root"],
        lambda path: path in here,
        mapped=["/root/train_set", "/root/mlopsws/input.txt"],
    )
    assert made == [
        "/DLCode",
        "/ckpt",
        "/content",
        "/content/out",
        "/content/out/models",
        "/home/me",  # /home is here: its part that is not is mounted
        "/home/me/project",
        "/home/me/project/out",
        "/models",
        "/predictions",
        "/results",
        "/results/run",
        "/root/mlopsws",  # a data: file inside it is mounted over it
        "/srv/x",
    ]  # not /root itself (here), nor /root/train_set/out (data: maps it), nor the system's folders


def spec_for(tmp_path: Path, script: str, **kw) -> TrialSpec:
    code, trial = tmp_path / "code", tmp_path / "trial"
    code.mkdir(exist_ok=True)
    trial.mkdir(exist_ok=True)
    (code / "train.py").write_text(script)
    return TrialSpec("r1", 0, code, "train.py", trial / "source.py", trial, **kw)


def test_a_trial_gets_its_folders_from_outside_mounted_where_the_script_names_them(tmp_path):
    here = tmp_path / "here"
    here.mkdir()
    script = f"model.save('/DLCode/m.h5')\nnp.save('/content/out/x.npy', a)\nopen('{here}/acc.txt', 'w')\n"
    spec = spec_for(tmp_path, script, env={ENV_AUTHOR_FOLDERS: '["/etc"]', "MLOPS_SEED": "3"})
    got = with_author_folders(spec)
    outside = spec.trial_dir / "outside"
    assert {(d.target, d.source, d.writable) for d in got.data} == {
        ("/DLCode", str(outside / "DLCode"), True),
        ("/content", str(outside / "content"), True),
    }
    assert (outside / "content" / "out").is_dir() and (outside / "DLCode").is_dir()
    # The pushed env: cannot name folders of its own: the runtime's list replaces it.
    assert json.loads(got.env[ENV_AUTHOR_FOLDERS]) == ["/DLCode", "/content", "/content/out"]
    assert got.env["MLOPS_SEED"] == "3"
    (tmp_path / "none").mkdir()
    none = with_author_folders(spec_for(tmp_path / "none", "x = 1\n"))
    assert none.data == () and json.loads(none.env[ENV_AUTHOR_FOLDERS]) == []


def test_a_link_the_trial_left_in_outside_is_never_followed_nor_mounted(tmp_path):
    """A restarted trial finds its folder as its code left it: a link there to a folder of this machine
    would be made into and mounted read-write in the next launch if it were followed."""
    victim = tmp_path / "victim"
    victim.mkdir()
    spec = spec_for(tmp_path, "model.save('/DLCode/m.h5')\nmodel.save('/other/deep/m.h5')\n")
    (spec.trial_dir / "outside").mkdir()
    os.symlink(victim, spec.trial_dir / "outside" / "DLCode")
    os.symlink(victim, spec.trial_dir / "outside" / "other")
    got = with_author_folders(spec)
    assert got.data == () and json.loads(got.env[ENV_AUTHOR_FOLDERS]) == []
    assert list(victim.iterdir()) == []
    (tmp_path / "again").mkdir()
    linked = spec_for(tmp_path / "again", "model.save('/DLCode/m.h5')\n")
    os.symlink(victim, linked.trial_dir / "outside")  # the folder itself a link
    assert with_author_folders(linked).data == () and list(victim.iterdir()) == []


WAITS = """
import os, time
from pathlib import Path
FLAG = '/root/shared/ready/'
while not os.path.exists(FLAG):
    time.sleep(1)
if not os.path.isdir('/ready'):
    print('no /ready')
if Path('/exports/done').exists():
    print('done')
np.save('/root/shared/ready/out.npy', x)
"""


def test_a_path_the_script_waits_for_or_asks_about_is_never_made(tmp_path):
    """Another job makes it: made by mlops, it would end the script's wait or change its course."""
    assert folders_for(spec_for(tmp_path, WAITS)) == ["/exports"]


def test_the_checkouts_files_and_notebooks_are_read_and_a_data_path_is_left_to_data(tmp_path):
    spec = spec_for(
        tmp_path,
        "import helpers\nopen('/root/train_set/out.csv', 'w')\n",
        data=(DataPath("/root/train_set", str(tmp_path)),),
    )
    (spec.code_dir / "helpers.py").write_text("PATH = '/shared/models/m.pkl'\n")
    cells = {"cells": [{"cell_type": "code", "source": ["np.save('/nb/out/a.npy', x)\n"]}]}
    (spec.code_dir / "explore.ipynb").write_text(json.dumps(cells))
    (spec.code_dir / "broken.py").write_text("def (:\n")
    assert folders_for(spec) == ["/nb", "/nb/out", "/shared", "/shared/models"]


def test_a_model_check_is_not_a_training_and_gets_nothing(tmp_path):
    spec = spec_for(tmp_path, "model.save('/DLCode/m.h5')\n", check_model=True)
    assert with_author_folders(spec) is spec


# -- the harness's side ---------------------------------------------------------------------------------


def test_the_harness_reads_an_accuracy_any_library_wrote_in_an_authors_folder_and_lets_it_be_made_again(
    tmp_path,
):
    """What a mount gives the script, without one: the folder is there (MLOPS_AUTHOR_FOLDERS names it),
    the script makes it again as on its author's machine, numpy writes its accuracy there past Python's
    open, and the harness reads it."""
    from tests.support.processes import run_harness

    folder = tmp_path / "DLCode"
    (folder / "models").mkdir(parents=True)
    script = f"""
    import os
    import numpy as np
    os.mkdir({str(folder)!r})
    os.makedirs({str(folder / "models")!r})
    np.save({str(folder / "models" / "weights.npy")!r}, np.zeros(3))
    np.savetxt({str(folder / "accuracy.txt")!r}, [91.25], fmt="%.2f")
    """
    names = json.dumps([str(folder), str(folder / "models")])
    done, out = run_harness(tmp_path, script, env={ENV_AUTHOR_FOLDERS: names})
    assert done.returncode == 0, done.stdout + done.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["value"] == 0.9125 and metrics["source"] == f"file:{folder / 'accuracy.txt'}"
    # A folder mlops did not make is refused as ever.
    other, again_dir = tmp_path / "other", tmp_path / "again"
    other.mkdir()
    again_dir.mkdir()
    again, _ = run_harness(
        again_dir, f"import os\nos.mkdir({str(other)!r})\n", env={ENV_AUTHOR_FOLDERS: names}
    )
    assert again.returncode == 1 and "FileExistsError" in again.stderr
