"""Building and finding the training images (and a run's environment image) on the engine, for the Docker
runtime: the tags come from :mod:`mlops.images`, which only names them."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import docker
import docker.errors
import docker.types
import requests.exceptions

from mlops import images
from mlops.errors import RuntimeUnavailable, TrialLaunchError
from mlops.runtime.base import TrialSpec

TRIAL_USER = "1000:1000"  # the images' non-root user, used when mlops itself runs as root
KEEP_BUILDS = 3  # builds of each image kept on the engine, newest first


class Images:
    """The image verbs of :class:`~mlops.runtime.docker.runtime.DockerRuntime` (``self.client`` is its)."""

    client: docker.DockerClient

    # -- images -------------------------------------------------------------------------------------

    def image_present(self, tag: str) -> bool:
        try:
            self.client.images.get(tag)
            return True
        except docker.errors.ImageNotFound:
            return False

    def image_size(self, tag: str) -> int | None:
        """The image's size in bytes, or None when it is not built."""
        try:
            return int(self.client.images.get(tag).attrs["Size"])
        except docker.errors.ImageNotFound:
            return None

    def build(self, image: str, force: bool = False, say: Callable[[str], None] = print) -> tuple[str, bool]:
        """Build one training image unless a build of the same inputs exists; (tag, built now)."""
        tag = images.tag(image)
        if not force and self.image_present(tag):
            return tag, False
        # One build of an image at a time on this machine: two processes (two pytest workers, two Jenkins
        # executors) would both build it, and the second waits here and finds it built.
        with open(Path(tempfile.gettempdir()) / f"mlops-build-{image}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not force and self.image_present(tag):
                return tag, False
            dockerfile = images.dockerfile(image)
            say(f"   building {tag} from {dockerfile.relative_to(images.ROOT)}")
            self.build_context(
                images.ROOT, dockerfile.relative_to(images.ROOT).as_posix(), tag, say, label=image
            )
            self.client.images.get(tag).tag(image, "latest")
            self._prune(image, tag)
        return tag, True

    def _prune(self, image: str, built: str) -> None:
        # Older builds go, but not the last few: checkouts of other branches (Jenkins agents build several
        # on one engine) would otherwise remove each other's tags and rebuild on every run. Never the tag
        # just built: a build whose every layer was cached dates from its first build, maybe the oldest.
        builds = sorted(self.client.images.list(name=image), key=lambda i: i.attrs["Created"], reverse=True)
        for old in builds[KEEP_BUILDS:]:
            for old_tag in old.tags:
                if old_tag not in (f"{image}:latest", built):
                    with contextlib.suppress(docker.errors.APIError):  # in use by a container: next time
                        self.client.images.remove(old_tag)

    def build_context(
        self,
        context: Path,
        dockerfile: str,
        tag: str,
        say: Callable[[str], None] = print,
        nocache: bool = False,
        label: str = "",
    ) -> list[str]:
        """Build ``context`` with its ``dockerfile`` (relative) as ``tag``, streaming the steps to ``say``.

        Returns the build's log. A failed build raises RuntimeUnavailable with the last lines of the log.
        """
        label = label or tag
        log: list[str] = []
        try:
            for chunk in self.client.api.build(
                path=str(context),
                dockerfile=dockerfile,
                tag=tag,
                rm=True,
                forcerm=True,
                decode=True,
                pull=False,
                nocache=nocache,
            ):
                for line in chunk.get("stream", "").splitlines():
                    if line.strip():
                        log.append(line)
                        if line.startswith("Step "):
                            say(f"   {label}: {line}")
                if "error" in chunk:
                    raise docker.errors.BuildError(chunk["error"], iter([{"stream": line} for line in log]))
        except docker.errors.BuildError as e:
            tail = "\n".join(log[-12:])
            raise RuntimeUnavailable(
                f"building {label} failed: {e.msg.strip()}\nlast lines of the build:\n{tail}"
            ) from e
        except docker.errors.APIError as e:
            raise RuntimeUnavailable(f"building {label} failed: {e.explanation or e}") from e
        return log

    def build_all(self, force: bool = False, say: Callable[[str], None] = print) -> dict[str, str]:
        """Build every image this checkout has a Dockerfile for (what is not up to date); name -> tag."""
        return {str(image): self.build(str(image), force=force, say=say)[0] for image in images.buildable()}

    def resolve(self, image: str) -> str:
        """The tag to run for ``image``; RuntimeUnavailable when this checkout's build of it is missing."""
        wanted = images.tag(image)
        if not self.image_present(wanted):
            raise RuntimeUnavailable(
                f"image {wanted} is not built; build it with `mlops images build {image}`"
            )
        return wanted

    def prepare(self, images: list[str], say: Callable[[str], None]) -> None:
        """Make sure the images the runs need exist (build what is missing); job 2 calls it."""
        for name in images:
            tag, built = self.build(name, say=say)
            say(f"   image {tag} {'built' if built else 'up to date'}")

    def _image_tag(self, spec: TrialSpec) -> str:
        if not spec.image:
            raise TrialLaunchError(spec.name, "no image was chosen for this trial")
        if ":" in spec.image:  # a full tag: a run's environment (mlops/envs/images.py) or a build of ours
            if not self.image_present(spec.image):
                raise TrialLaunchError(spec.name, f"image {spec.image} is not on the engine (removed?)")
            return spec.image
        try:
            return self.resolve(spec.image)
        except RuntimeUnavailable as e:
            raise TrialLaunchError(spec.name, str(e)) from e

    # -- environments (mlops/envs/images.py asks; this module talks to the engine) -------------------

    def image_id(self, tag: str) -> str:
        return str(self.client.images.get(tag).id)

    def probe(self, tag: str, code: str) -> str:
        """What ``python -c code`` prints in a throwaway container of ``tag`` (no network, not root)."""
        try:
            out = self.client.containers.run(
                tag,
                ["-I", "-c", code],
                entrypoint=["python"],
                user=TRIAL_USER,
                network_mode="none",
                remove=True,
            )
        except docker.errors.DockerException as e:
            raise RuntimeUnavailable(f"cannot look inside image {tag}: {e}") from e
        return bytes(out).decode("utf-8", errors="replace")

    def build_uid(self) -> int | None:
        """The uid of a build container when its folders must be handed over (mlops runs as root)."""
        return int(TRIAL_USER.split(":")[0]) if os.getuid() == 0 else None

    def run_build(
        self,
        image: str,
        command: list[str],
        env: Mapping[str, str],
        mounts: list[tuple[Path, Path, bool]],
        workdir: str,
    ) -> tuple[int, str, str]:
        """Run one command of an environment build (mlops/envs/boxes.py) in a container of ``image``:
        no network (the index only through the proxy socket among ``mounts``), not root, no capabilities,
        a read-only root file system, only the ``mounts`` marked writable to write. (exit code, out, err)."""
        user = TRIAL_USER if os.getuid() == 0 else f"{os.getuid()}:{os.getgid()}"
        container = None
        try:
            container = self.client.containers.create(
                image,
                command,
                entrypoint=[],
                environment=dict(env),
                user=user,
                working_dir=workdir,
                network_mode="none",
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                read_only=True,
                tmpfs={"/tmp": "rw,exec,size=2g"},
                mounts=[
                    docker.types.Mount(str(at), str(src), type="bind", read_only=not rw)
                    for src, at, rw in mounts
                ],
                labels={"mlops.build": "environment"},
            )
            container.start()
            status = container.wait(timeout=1800)
            out, err = (
                bytes(container.logs(stdout=which, stderr=not which)).decode("utf-8", errors="replace")
                for which in (True, False)
            )
            return int(status.get("StatusCode", 1)), out, err
        except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as e:
            raise RuntimeUnavailable(f"cannot run a build container of {image}: {e}") from e
        finally:
            if container is not None:
                with contextlib.suppress(docker.errors.DockerException):
                    container.remove(force=True)

    def build_environment(
        self, base: str, folder: Path, tag: str, say: Callable[[str], None] = print
    ) -> None:
        """Build ``folder`` (its Dockerfile derives from ``base``) as ``tag``: a run's environment."""
        self.build_context(folder, "Dockerfile", tag, say, label=f"environment {tag}")
