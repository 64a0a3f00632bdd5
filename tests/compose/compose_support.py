"""The compose example's test support: a PostgreSQL image built here, and a podman of the test's own
(storage, networks, volumes and its Docker-compatible API socket under one directory) that
docker-compose talks to. Nothing is pulled, and nothing of it outlives the test session."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from devenv import hostnet, images

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "compose"
POSTGRES_IMAGE = "localhost/schemagate-postgres:15"
# podman cannot raise the VM's limits; below the hard limits it runs (docs/notes: "Also seen").
ULIMITS = ('"nofile=1024:1024"', '"nproc=1024:1024"')
# Compose networks come from this pool, apart from the dev cluster's 10.244.0.0/16 and the host's.
SUBNET_POOL = "10.213.0.0/16"
NETAVARK_RUN_DIR = Path("/run/containers/networks")


def forwarding() -> dict[str, str | None]:
    """net.ipv4.ip_forward and each interface's forwarding. netavark turns ip_forward on for its bridges,
    and the kernel then turns forwarding on for every interface; the dev cluster has it on for its bridge
    alone (devenv/hostnet.py) and its egress test checks so."""
    names = sorted(p.parent.name for p in Path("/proc/sys/net/ipv4/conf").glob("*/forwarding"))
    return {"net.ipv4.ip_forward": hostnet.read_sysctl("net.ipv4.ip_forward"),
            **{f"net.ipv4.conf.{n}.forwarding": hostnet.read_sysctl(f"net.ipv4.conf.{n}.forwarding") for n in names}}


def restore_forwarding(before: dict[str, str | None]) -> None:
    """ip_forward first (writing it sets every interface's), then each interface as it was: before, or,
    for one made since (the dev cluster's bridge), as it was just now. `all` follows ip_forward."""
    now, key = forwarding(), "net.ipv4.ip_forward"
    if now[key] == before[key] or before[key] is None:
        return
    hostnet.write_sysctl(key, before[key])
    for name, value in now.items():
        want = before.get(name, value)
        if name not in (key, "net.ipv4.conf.all.forwarding") and want is not None \
                and hostnet.read_sysctl(name) not in (None, want):
            hostnet.write_sysctl(name, want)


def require(tool: str) -> str:
    found = shutil.which(tool)
    if not found:
        raise RuntimeError(f"{tool} not found: hack/install-compose.sh installs podman and docker-compose "
                           f"from Debian's packages")
    return found


def postgres_image(cache: Path | None = None) -> images.Image:
    """examples/compose/postgres/Containerfile on the local Debian base (Debian's postgresql-15), cached
    by its inputs like devenv.images' own."""
    cache = cache or images.cache_dir()
    base = images.base_image(cache)
    context = EXAMPLE / "postgres"
    key = images._digest(base.encode(), *(p.read_bytes() for p in sorted(context.iterdir())))
    archive = cache / "images" / f"postgres-{key}.oci.tar"
    if archive.exists():
        return images.Image(POSTGRES_IMAGE, archive)
    archive.parent.mkdir(parents=True, exist_ok=True)
    b = images.Buildah(cache / "buildah")
    b("buildah build (postgres)", "build", "--pull=never", "--network=host", "--layers", "--quiet",
      "--build-arg", f"BASE={base}", "-t", POSTGRES_IMAGE, "-f", str(context / "Containerfile"), str(context))
    b.push_archive(POSTGRES_IMAGE, archive)
    return images.Image(POSTGRES_IMAGE, archive)


class Podman:
    """podman with everything under `root`, and its API service on `root/podman.sock`."""

    def __init__(self, root: Path):
        self.root = root
        for d in ("storage", "run", "tmp", "networks"):
            (root / d).mkdir(parents=True, exist_ok=True)
        (root / "storage.conf").write_text(
            f'[storage]\ndriver = "overlay"\ngraphroot = "{root / "storage"}"\nrunroot = "{root / "run"}"\n')
        (root / "containers.conf").write_text(
            f'[containers]\ndefault_ulimits = [{", ".join(ULIMITS)}]\n'
            # static_dir and volume_path are left to their defaults under graphroot: conmon's exit command
            # (`podman container cleanup`, which moves a container to "exited") gets --root but not this
            # file, and would look for the database elsewhere. No events are recorded (no file anywhere).
            f'[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "none"\ntmp_dir = "{root / "tmp"}"\n'
            f'[network]\nnetwork_backend = "netavark"\nnetwork_config_dir = "{root / "networks"}"\n'
            f'default_subnet_pools = [{{"base" = "{SUBNET_POOL}", "size" = 24}}]\n')
        self.env = {**os.environ, "CONTAINERS_CONF": str(root / "containers.conf"),
                    "CONTAINERS_STORAGE_CONF": str(root / "storage.conf"), "XDG_RUNTIME_DIR": str(root / "run")}
        self.socket = root / "podman.sock"
        # netavark keeps its run-time state (IP allocations, aardvark-dns) here whatever the configuration
        # says (podman 4.3): removed again when it was not there before.
        self._netavark_had_run_dir = NETAVARK_RUN_DIR.exists()
        self._forwarding = forwarding()
        self.podman = require("podman")
        self._service: subprocess.Popen[bytes] | None = None

    def __call__(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([self.podman, *args], env=self.env, capture_output=True, text=True, timeout=timeout,
                              check=False)
        if check and proc.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
        return proc

    def start(self) -> None:
        log = open(self.root / "service.log", "wb")
        self._service = subprocess.Popen([self.podman, "system", "service", "--time=0", f"unix://{self.socket}"],
                                         env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while not self.socket.exists():
            if self._service.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"podman system service did not start:\n{(self.root / 'service.log').read_text()}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stops the API service (its own process group only) and removes whatever is left."""
        if self._service is not None and self._service.poll() is None:
            os.killpg(self._service.pid, signal.SIGTERM)
            try:
                self._service.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self._service.pid, signal.SIGKILL)
                self._service.wait()
        self("rm", "--all", "--force", "--time", "1", check=False)
        self("pod", "rm", "--all", "--force", check=False)
        self("volume", "prune", "--force", check=False)
        self("network", "prune", "--force", check=False)
        self("system", "reset", "--force", check=False)
        if not self._netavark_had_run_dir:
            shutil.rmtree(NETAVARK_RUN_DIR, ignore_errors=True)
        restore_forwarding(self._forwarding)

    def compose(self, project: str, *args: str, files: tuple[Path, ...] = (), env: dict[str, str] | None = None,
                timeout: float = 300) -> subprocess.CompletedProcess[str]:
        argv = [require("docker-compose"), "--project-name", project, "--project-directory", str(EXAMPLE)]
        for f in (EXAMPLE / "compose.yaml", *files):
            argv += ["-f", str(f)]
        full = {**self.env, **(env or {}), "DOCKER_HOST": f"unix://{self.socket}"}
        done = threading.Event()
        reaper = threading.Thread(target=self._reap_stopped, args=(project, done), daemon=True)
        reaper.start()
        try:
            return subprocess.run([*argv, *args], env=full, capture_output=True, text=True, timeout=timeout,
                                  check=False)
        except subprocess.TimeoutExpired as e:
            said = (e.stderr or b"").decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
            raise AssertionError(f"docker-compose {' '.join(args)} ({project}) did not return in {timeout:g} s; "
                                 f"it said:\n{said}\n{self.diagnose(project)}") from None
        finally:
            done.set()
            reaper.join(timeout=60)

    def _reap_stopped(self, project: str, done: threading.Event) -> None:
        """Moves the project's exited containers from podman's `stopped` to `exited`, as Docker reports them.

        podman marks a container `exited` only once conmon's exit command (`podman container cleanup`) has
        run; until then its API says `stopped` (podman issues 5336, 17728). docker-compose 1.29 starts a
        service whose dependency must be `service_completed_successfully` only when that dependency's
        State.Status is `exited`, so it waits for ever if that cleanup never comes. In two CI runs `up` hung
        300 s, once with `migrate` exited 0 four minutes before (2026-12-03); `stopped` is what explains it,
        not yet seen directly (`diagnose` now prints each State.Status). The cleanup that conmon would run is
        run here: it is idempotent, and a container already `exited` is left alone."""
        while not done.wait(1):
            names = self("ps", "--all", "--filter", f"label=com.docker.compose.project={project}", "--format",
                         "{{.Names}}", check=False, timeout=30).stdout.split()
            if not names:
                continue
            states = self("inspect", "--format", "{{.Name}} {{.State.Status}}", *names, check=False, timeout=30)
            for line in states.stdout.splitlines():
                name, _, state = line.partition(" ")
                if state.strip() == "stopped":
                    self("container", "cleanup", name, check=False, timeout=30)

    def diagnose(self, project: str) -> str:
        """What a person would look at when a project hangs: its containers' states and their logs."""
        listed = self("ps", "--all", "--filter", f"label=com.docker.compose.project={project}", "--format",
                      "{{.Names}} {{.State}} {{.Status}}", check=False, timeout=30).stdout
        states = self("inspect", "--format", "{{.Name}} {{.State.Status}}",
                      *(line.split()[0] for line in listed.splitlines() if line.strip()), check=False, timeout=30)
        out = [listed, "State.Status as podman inspect reports it:", states.stdout]
        for name in (line.split()[0] for line in listed.splitlines() if line.strip()):
            logs = self("logs", "--tail", "20", name, check=False, timeout=30)
            out.append(f"--- podman logs {name}:\n{logs.stdout}{logs.stderr}")
        return "\n".join(out)
