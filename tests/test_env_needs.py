"""What the pushed code asks for, read from its files: requirement files, pyproject, environment.yml,
imports; which distribution an import means; which library generation pinned versions choose; the index."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from mlops.domain import Image
from mlops.envs.distributions import distribution_for, likely
from mlops.envs.generations import Generation, choose, pins_of, requirements_of
from mlops.envs.needs import Need, imports_of, read_declared, read_imports
from mlops.envs.policy import SourcePolicy
from mlops.envs.uv import index_environment, parse_lock, pip_conf_files
from mlops.errors import SourceError
from tests.support.envs import write_files


def test_requirements_txt_as_pip_reads_it(tmp_path: Path) -> None:
    root = write_files(
        tmp_path,
        {
            "requirements.txt": """\
                # what the notebook needs
                seaborn==0.13.2  # plots
                -r more/requirements-extra.txt
                --pre
                tqdm \\
                    >=4.0
                opencv-python-headless==4.10.0.84 --hash=sha256:abc
                pywin32; sys_platform == "win32"
                """,
            "more/requirements-extra.txt": "pillow\n",
            "requirements-dev.txt": "pytest\n",
        },
    )
    declared = read_declared(root, root)
    assert [(n.requirement, n.origin) for n in declared.needs] == [
        ("seaborn==0.13.2", "requirements.txt:2"),
        ("pillow", "more/requirements-extra.txt:1"),
        ("tqdm>=4.0", "requirements.txt:5"),
        ("opencv-python-headless==4.10.0.84", "requirements.txt:7"),
        ('pywin32; sys_platform == "win32"', "requirements.txt:8"),
    ]
    assert declared.files == ("requirements.txt",)  # requirements-dev.txt is a developer's, not training's
    assert declared.notes == ("requirements.txt:4: option '--pre' ignored",)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("numpy=>1.2", "requirements.txt:2: 'numpy=>1.2' is not a requirement"),
        ("./vendored/pkg", "requirements.txt:2: './vendored/pkg' names a location, not a package"),
        ("-r ../../etc/passwd", "requirements.txt:2: includes '../../etc/passwd', which is not a file"),
        ("-c /etc/passwd", "requirements.txt:2: constrains with '/etc/passwd', which is not a file"),
        (
            "evilprobe @ file:///tmp/evilprobe",
            "requirements.txt:2: 'evilprobe @ file:///tmp/evilprobe' names a",
        ),
        (
            "evilprobe @ file:vendor/evilprobe",
            "requirements.txt:2: 'evilprobe @ file:vendor/evilprobe' names a",
        ),
        (
            "pkg @ git+https://example.com/x.git",
            "requirements.txt:2: 'pkg @ git+https://example.com/x.git' names",
        ),
        (
            "https://example.com/pkg-1.0.tar.gz",
            "requirements.txt:2: 'https://example.com/pkg-1.0.tar.gz' names",
        ),
        ("vendor/evilprobe-1.0.tar.gz", "requirements.txt:2: 'vendor/evilprobe-1.0.tar.gz' names a location"),
        ("-e .", "requirements.txt:2: '-e' names an editable path"),
        ("--index-url https://mirror.example/simple", "requirements.txt:2: '--index-url' names an index"),
        (
            "--extra-index-url=https://x.example/s",
            "requirements.txt:2: '--extra-index-url=https://x.example/s' names",
        ),
        ("-ihttps://x.example/simple", "requirements.txt:2: '-ihttps://x.example/simple' names an index"),
        ("--find-links /srv/wheels", "requirements.txt:2: '--find-links' names a place to find packages"),
        ("--trusted-host x.example", "requirements.txt:2: '--trusted-host' names a host whose TLS"),
        ("pandas --global-option=--evil", "requirements.txt:2: '--global-option=--evil' on a requirement"),
    ],
)
def test_a_line_that_is_not_a_requirement_names_the_file_and_line(
    tmp_path: Path, line: str, expected: str
) -> None:
    root = write_files(tmp_path, {"requirements.txt": f"pandas\n{line}\n"})
    with pytest.raises(SourceError) as e:
        read_declared(root, root)
    assert str(e.value).startswith(expected)


def test_pyproject_dependencies_and_the_pip_section_of_environment_yml(tmp_path: Path) -> None:
    root = write_files(
        tmp_path,
        {
            "pyproject.toml": '[project]\nname = "x"\ndependencies = [\n  "tqdm>=4",\n]\n',
            "environment.yml": "name: lab\ndependencies:\n  - python=3.8\n  - numpy\n  - pip:\n    - seaborn\n",
        },
    )
    declared = read_declared(root, root)
    assert [(n.requirement, n.origin) for n in declared.needs] == [
        ("tqdm>=4", "pyproject.toml:4"),
        ("seaborn", "environment.yml:6"),
    ]
    assert "conda packages are not installed (numpy)" in declared.notes[0]


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"pyproject.toml": '[project]\nname = "x"\ndependencies = [\n  "evil @ file:///srv/evil",\n]\n'},
         "pyproject.toml:4: 'evil @ file:///srv/evil' names a location"),
        ({"environment.yml": "dependencies:\n  - pip:\n    - --extra-index-url https://x.example/simple\n"},
         "environment.yml:3: '--extra-index-url' names an index"),
        ({"environment.yml": "dependencies:\n  - pip:\n    - git+https://example.com/x.git\n"},
         "environment.yml:3: 'git+https://example.com/x.git' names a location"),
        ({"environment.yml": "dependencies:\n  - pip:\n    - -e ./vendor/pkg\n"},
         "environment.yml:3: '-e' names an editable path"),
    ],
)  # fmt: skip
def test_pyproject_and_environment_yml_are_data_too(tmp_path: Path, files: dict, expected: str) -> None:
    root = write_files(tmp_path, files)
    with pytest.raises(SourceError) as e:
        read_declared(root, root)
    assert str(e.value).startswith(expected)


def test_only_the_owner_allows_a_vendored_source_and_only_inside_the_repository(tmp_path: Path) -> None:
    root = write_files(
        tmp_path / "repo",
        {
            "vendor/evilprobe-1.0.tar.gz": "x",
            "requirements.txt": "evilprobe @ file:vendor/evilprobe-1.0.tar.gz\n",
        },
    )
    with pytest.raises(SourceError):
        read_declared(root, root)  # the pusher cannot allow it
    policy = SourcePolicy(("vendor/*.tar.gz",))
    (need,) = read_declared(root, root, policy).needs
    assert need.name == "evilprobe" and need.source is not None
    assert need.requirement == f"evilprobe @ {(root / 'vendor/evilprobe-1.0.tar.gz').resolve().as_uri()}"
    (root / "requirements.txt").write_text("vendor/evilprobe-1.0.tar.gz\n")  # a bare path: named by its file
    assert read_declared(root, root, policy).needs[0].name == "evilprobe"
    outside = write_files(tmp_path / "outside", {"evilprobe-1.0.tar.gz": "x"})
    (root / "vendor/link-1.0.tar.gz").symlink_to(outside / "evilprobe-1.0.tar.gz")
    (root / "requirements.txt").write_text("vendor/link-1.0.tar.gz\n")  # allowed by name, outside in fact
    with pytest.raises(SourceError, match="names a location"):
        read_declared(root, root, policy)


def test_imports_skip_the_standard_library_local_modules_and_optional_ones(tmp_path: Path) -> None:
    root = write_files(
        tmp_path,
        {
            "train.py": """\
                import os, json
                import cv2
                from PIL import Image
                from helpers import load
                from . import sibling
                try:
                    import cPickle as pickle
                except ImportError:
                    import pickle
                try:
                    from google.colab import drive
                except Exception:
                    drive = None
                def main():
                    import seaborn as sns
                """,
            "helpers.py": "import tqdm\nimport cv2\n",
        },
    )
    found = [(i.top, i.origin) for i in read_imports(root, root / "train.py")]
    assert found == [
        ("cv2", "train.py:2: import cv2"),
        ("PIL", "train.py:3: from PIL import Image"),
        ("seaborn", "train.py:15: import seaborn as sns"),
        ("tqdm", "helpers.py:1: import tqdm"),
    ]


def test_an_import_in_a_try_is_optional_only_when_the_handler_catches_a_failed_import() -> None:
    tree = ast.parse(
        "try:\n    import a\nexcept ValueError:\n    pass\ntry:\n    import b\nexcept:\n    pass\n"
    )
    assert [(m, optional) for m, _, _, optional in imports_of(tree)] == [("a", False), ("b", True)]


def test_distributions_come_from_a_curated_map_never_from_the_import_name() -> None:
    assert distribution_for("sklearn") == "scikit_learn"
    assert distribution_for("PIL") == "Pillow"
    assert distribution_for("yaml") == "PyYAML"
    assert (
        distribution_for("cv2") == "opencv-python-headless"
    )  # not in pipreqs's table; headless for containers
    assert distribution_for("seaborn") == "seaborn"  # a common same-name distribution, listed by us
    assert distribution_for("kera") is None  # a typo: the index's `kera` was installed before
    assert distribution_for("companyutils_internal") is None
    assert likely("kera") == "keras" and likely("sklern") == "sklearn" and likely("Numpy") == "numpy"
    assert likely("companyutils_internal") is None


def need(text: str) -> Need:
    name = text.split("=")[0].split("<")[0].split(">")[0].strip()
    return Need(text, name, "requirements.txt:1")


@pytest.mark.parametrize(
    ("requirement", "generation"),
    [
        ("tensorflow==2.4", Generation.LEGACY),
        ("tensorflow-gpu==2.10.0", Generation.LEGACY),
        ("keras<3", Generation.LEGACY),
        ("scikit-learn==0.24", Generation.LEGACY),
        ("tensorflow>=2.16", Generation.CURRENT),
        ("keras", Generation.CURRENT),
        ("seaborn==0.9", Generation.CURRENT),
    ],
)
def test_pinned_framework_versions_choose_the_generation(requirement: str, generation: Generation) -> None:
    assert choose([need(requirement)], legacy_api=False)[0] is generation


def test_keras2_code_gets_the_legacy_generation_whose_pins_are_the_keras2_image() -> None:
    assert choose([], legacy_api=True) == (Generation.LEGACY, "job 2 found Keras 2 code")
    assert "tensorflow-cpu==2.15.1" in requirements_of(Generation.LEGACY)
    assert pins_of(Image.KERAS2)["keras"] == "2.15"


def test_the_machine_s_pip_index_is_handed_to_uv(tmp_path: Path) -> None:
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nindex-url = https://mirror.example/simple\nfind-links = /nowhere/wheels\n")
    env = {"HOME": str(tmp_path), "PIP_CONFIG_FILE": str(conf)}
    assert pip_conf_files(env)[-1] == conf
    assert index_environment(env, [conf]) == {
        "UV_INDEX_URL": "https://mirror.example/simple"
    }  # no such folder
    env["PIP_INDEX_URL"] = "https://other.example/simple"
    assert index_environment(env, [conf])["UV_INDEX_URL"] == "https://other.example/simple"
    env["UV_INDEX_URL"] = "https://uv.example/simple"
    assert "UV_INDEX_URL" not in index_environment(env, [conf])  # uv reads its own setting itself
    env["PIP_EXTRA_INDEX_URL"] = "https://extra.example/simple"
    assert index_environment(env, [conf])["UV_INDEX_STRATEGY"] == "unsafe-best-match"  # pip's way


def test_uv_lock_lines_with_their_reasons() -> None:
    text = "numpy==2.4.6  # via seaborn\nseaborn==0.13.2  # via -r -\n"
    assert parse_lock(text) == [("numpy", "2.4.6", "seaborn"), ("seaborn", "0.13.2", "-r -")]
