"""Container images built on this machine, never pulled: the sandbox (pause) image, a Debian bookworm
base made with debootstrap, and our own image built from the repository's Dockerfile with buildah.

Each image is kept as an OCI archive in $SCHEMAGATE_CACHE/images, named by a hash of its inputs, so a
warm run reuses it and any change to the Dockerfile, pyproject.toml, README.md, requirements/ or
operator/ rebuilds it.
buildah keeps its own storage under the cache too, so nothing is written to the machine's default one.

    python -m devenv.images schemagate   # build (or reuse) our image; prints the archive's path
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SUITE = "bookworm"
# The base's packages: Python 3.11 with venv (what the Dockerfile's BASE must offer), TLS roots.
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
DEBIAN_MIRROR = os.environ.get("SCHEMAGATE_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# The reference the tests, charts and demo use for our image.
SCHEMAGATE_IMAGE = "localhost/schemagate:dev"
PAUSE_IMAGE = "localhost/pause:schemagate"

PAUSE_C = r"""
/* The pod sandbox's process: holds the namespaces, reaps orphans, exits on SIGTERM/SIGINT. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static void quit(int s) { (void)s; _exit(0); }
static void reap(int s) { (void)s; while (waitpid(-1, 0, WNOHANG) > 0) {} }
int main(void) {
  signal(SIGINT, quit); signal(SIGTERM, quit); signal(SIGCHLD, reap);
  for (;;) pause();
}
"""


class ImageBuildError(RuntimeError):
    """A build step failed; the message names the step and carries its output's tail."""


@dataclass(frozen=True)
class Image:
    """An image as an OCI archive, and the reference it is imported under."""

    ref: str
    archive: Path


def cache_dir() -> Path:
    return Path(os.environ.get("SCHEMAGATE_CACHE", Path.home() / ".cache" / "schemagate"))


def _run(step: str, argv: list[str], **kw: object) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, **kw)  # type: ignore[call-overload]
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-4000:]
        raise ImageBuildError(f"{step} failed ({proc.returncode}): {' '.join(argv[:4])} …\n{tail}")
    return str(proc.stdout)


def _require(tool: str, package: str) -> str:
    found = shutil.which(tool)
    if not found:
        raise ImageBuildError(f"{tool} not found; install Debian's {package} package "
                              "(hack/install-node.sh does)")
    return found


class Buildah:
    """buildah with its storage in our cache: no daemon, nothing in /var/lib/containers."""

    def __init__(self, root: Path):
        self.argv = [_require("buildah", "buildah"), "--root", str(root / "storage"),
                     "--runroot", str(root / "run"), "--storage-driver", "overlay"]

    def __call__(self, step: str, *args: str, cwd: Path | None = None) -> str:
        return _run(step, [*self.argv, *args], cwd=cwd).strip()

    def has(self, ref: str) -> bool:
        return subprocess.run([*self.argv, "inspect", "--type", "image", ref], capture_output=True,
                              check=False).returncode == 0

    def push_archive(self, ref: str, archive: Path) -> None:
        tmp = archive.with_suffix(f".{os.getpid()}.tmp")  # per process: test workers may build the same image
        tmp.unlink(missing_ok=True)
        self("push to an OCI archive", "push", "--quiet", ref, f"oci-archive:{tmp}:{ref}")
        tmp.rename(archive)


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()[:16]


def _context_files(repo: Path) -> list[Path]:
    """What .dockerignore lets into the build context: pyproject.toml, README.md, requirements/, operator/."""
    files = [repo / "Dockerfile", repo / ".dockerignore", repo / "pyproject.toml", repo / "README.md"]
    for d in ("requirements", "operator"):
        files += sorted(p for p in (repo / d).rglob("*")
                        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")
    return files


def context_hash(repo: Path = REPO) -> str:
    """A hash of the Dockerfile's inputs: file names and contents."""
    parts: list[bytes] = []
    for f in _context_files(repo):
        parts += [str(f.relative_to(repo)).encode(), f.read_bytes()]
    return _digest(*parts)


def pause_image(cache: Path | None = None) -> Image:
    cache = cache or cache_dir()
    images = cache / "images"
    images.mkdir(parents=True, exist_ok=True)
    archive = images / f"pause-{_digest(PAUSE_C.encode())}.oci.tar"
    if archive.exists():
        return Image(PAUSE_IMAGE, archive)
    _require("gcc", "gcc")
    b = Buildah(cache / "buildah")
    with tempfile.TemporaryDirectory(dir=images) as tmp:
        src, binary = Path(tmp) / "pause.c", Path(tmp) / "pause"
        src.write_text(PAUSE_C)
        _run("compile pause", ["gcc", "-static", "-Os", "-s", "-o", str(binary), str(src)])
        c = b("buildah from scratch", "from", "scratch")
        try:
            b("copy pause", "copy", c, str(binary), "/pause")
            b("config pause", "config", "--entrypoint", '["/pause"]', c)
            b("commit pause", "commit", "--quiet", c, PAUSE_IMAGE)
        finally:
            b("remove working container", "rm", c)
    b.push_archive(PAUSE_IMAGE, archive)
    return Image(PAUSE_IMAGE, archive)


def base_image(cache: Path | None = None) -> str:
    """Debian bookworm (minbase + Python 3.11) in buildah's storage; returns its reference."""
    cache = cache or cache_dir()
    b = Buildah(cache / "buildah")
    ref = f"localhost/schemagate-base:{SUITE}-{_digest(SUITE.encode(), ' '.join(BASE_PACKAGES).encode())}"
    if b.has(ref):
        return ref
    (cache / "images").mkdir(parents=True, exist_ok=True)
    # Two builds at once (a test run and `hack/demo`, or a run stopped while its build went on) would share
    # the debootstrap directory: one wiped it under the other, which then "couldn't find" any deb.
    with open(cache / "images" / "debootstrap.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if b.has(ref):
            return ref
        _debootstrap(b, cache, ref)
    return ref


def _debootstrap(b: Buildah, cache: Path, ref: str) -> None:
    debootstrap = _require("debootstrap", "debootstrap")
    work = cache / "images" / "debootstrap"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        print(f"devenv.images: debootstrap {SUITE} (minbase + {', '.join(BASE_PACKAGES)})", file=sys.stderr)
        _run("debootstrap", [debootstrap, "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
                             SUITE, str(work), DEBIAN_MIRROR])
        # Nothing of the build machine's apt cache belongs in an image.
        shutil.rmtree(work / "var" / "cache" / "apt" / "archives", ignore_errors=True)
        c = b("buildah from scratch", "from", "scratch")
        try:
            mnt = Path(b("mount the base", "mount", c))
            _run("copy the base's root filesystem", ["cp", "-a", f"{work}/.", f"{mnt}/"])
            b("unmount the base", "umount", c)
            b("config base", "config", "--env", "PATH=/usr/local/bin:/usr/bin:/bin", "--cmd", "/bin/bash", c)
            b("commit base", "commit", "--quiet", c, ref)
        finally:
            subprocess.run([*b.argv, "rm", c], capture_output=True, check=False)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def schemagate_image(cache: Path | None = None, repo: Path = REPO) -> Image:
    """Our image, built from `Dockerfile` on the local bookworm base; reused while its inputs are unchanged."""
    cache = cache or cache_dir()
    images = cache / "images"
    images.mkdir(parents=True, exist_ok=True)
    base = base_image(cache)
    archive = images / f"schemagate-{_digest(base.encode(), context_hash(repo).encode())}.oci.tar"
    if archive.exists():
        return Image(SCHEMAGATE_IMAGE, archive)
    b = Buildah(cache / "buildah")
    args = ["build", "--pull=never", "--network=host", "--layers", "--quiet",
            "--build-arg", f"BASE={base}", "-t", SCHEMAGATE_IMAGE, "-f", str(repo / "Dockerfile")]
    cert = os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE")
    if cert and Path(cert).is_file():
        # The build reaches PyPI through this machine's TLS setup; the bundle is mounted, not copied.
        args += ["--volume", f"{cert}:/run/host-ca.crt:ro", "--build-arg", "PIP_CERT=/run/host-ca.crt"]
    print(f"devenv.images: building {SCHEMAGATE_IMAGE} from {repo / 'Dockerfile'} on {base}", file=sys.stderr)
    b("buildah build (Dockerfile)", *args, str(repo), cwd=repo)
    b.push_archive(SCHEMAGATE_IMAGE, archive)
    return Image(SCHEMAGATE_IMAGE, archive)


def files_image(ref: str, files: dict[str, str], path: str, cache: Path | None = None,
                entrypoint: list[str] | None = None) -> Image:
    """An image FROM the local Debian base with `files` in directory `path` (a migrations image: the
    Job's init container copies them with `sh`), and optionally an entrypoint."""
    cache = cache or cache_dir()
    base = base_image(cache)
    key = _digest(ref.encode(), base.encode(), path.encode(), json.dumps(entrypoint).encode(),
                  *(f"{n}\0{c}".encode() for n, c in sorted(files.items())))
    archive = cache / "images" / f"files-{key}.oci.tar"
    if archive.exists():
        return Image(ref, archive)
    b = Buildah(cache / "buildah")
    with tempfile.TemporaryDirectory(dir=cache / "images") as tmp:
        for name, content in files.items():
            (Path(tmp) / name).write_text(content)
        c = b("buildah from the base", "from", "--pull=never", base)
        try:
            b("copy the files", "copy", "--chmod", "0644", c, *(str(Path(tmp) / n) for n in files), path.rstrip("/") + "/")
            if entrypoint:
                b("config", "config", "--entrypoint", json.dumps(entrypoint), "--user", "65532:65532", c)
            b("commit", "commit", "--quiet", c, ref)
        finally:
            b("remove working container", "rm", c)
    b.push_archive(ref, archive)
    return Image(ref, archive)


# config-server itself is a Go service we do not build; the charts, the gate's tests and the demo need a
# container that runs and answers its probes like it, under the restricted profile.
APP_STANDIN = r"""
import http.server, os, signal, sys
# PID 1 in its container: without a handler SIGTERM is ignored and every rollout waits out the grace period.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()
        self.wfile.write(b"config-server stand-in, build " + os.environ.get("BUILD", "").encode() + b"\n")
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("", int(os.environ.get("PORT", "8080"))), Health).serve_forever()
"""
APP_IMAGE = "localhost/config-server"
APP_TAGS = ("1.0.0", "1.1.0")  # the chart's default and the demo's next release


def app_images(cache: Path | None = None) -> list[Image]:
    return [files_image(f"{APP_IMAGE}:{tag}", {"server.py": APP_STANDIN}, "/app", cache,
                        entrypoint=["python3", "/app/server.py"]) for tag in APP_TAGS]


def archive_digest(archive: Path) -> str:
    """The manifest digest (sha256:…) of the single image in an OCI archive."""
    with tarfile.open(archive) as tar:
        member = tar.extractfile("index.json")
        if member is None:
            raise ImageBuildError(f"{archive} has no index.json")
        index = json.load(member)
    return str(index["manifests"][0]["digest"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m devenv.images")
    p.add_argument("image", choices=["schemagate", "pause", "base"])
    a = p.parse_args(argv)
    try:
        if a.image == "base":
            print(base_image())
        else:
            img = schemagate_image() if a.image == "schemagate" else pause_image()
            print(img.archive)
    except ImageBuildError as exc:
        print(f"devenv.images: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
