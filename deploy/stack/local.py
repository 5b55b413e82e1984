"""Starting, checking and stopping the planned services as local processes.

Every process gets its own session (so its children go with it) and a record in
`.stack/run/<service>.pid`; its output goes to `.stack/logs/<service>.log`. Every process also
carries STACK_MARKER in its environment, which its children inherit: `down` ends whatever
still carries it, so a run worker that left its session is not left behind either.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from deploy.stack.compose import POSTGRES_DATA, REPO, LocalService, Plan

STACK_MARKER = "TECL_STACK_DIR"
ORDER_FILE = "started"
APT_GET = "apt-get"


class StackError(RuntimeError):
    """The stack cannot be started, checked or stopped; the message says what to do."""


@dataclass(frozen=True)
class Extra:
    """A process the stack runs that is not a compose service (the broker simulator)."""

    name: str
    argv: tuple[str, ...]
    url: str
    health_path: str
    # Run once it is healthy, on every `up` (so it must be idempotent).
    setup: Callable[[], None] | None = None

    @property
    def health_url(self) -> str:
        return f"{self.url}{self.health_path}"


@dataclass(frozen=True)
class ServiceState:
    name: str
    pid: int | None
    healthy: bool


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def carries_marker(pid: int, stack_dir: Path) -> bool:
    """Whether process `pid` is one of this stack's: a pid in a record may since have been
    given to any other process (after a reboot, say), which must never be signalled."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"{STACK_MARKER}={stack_dir}".encode() in environ


def recorded_pid(pid_file: Path, stack_dir: Path) -> int | None:
    """The live process of a pid record, if it is still this stack's."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) and carries_marker(pid, stack_dir) else None


def marked_processes(stack_dir: Path) -> list[int]:
    """Every process that carries this stack's marker in its environment."""
    marker = f"{STACK_MARKER}={stack_dir}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker in environ and alive(int(proc.name)):
            found.append(int(proc.name))
    return found


class LocalStack:
    def __init__(self, plan: Plan, venv: Path, extras: Sequence[Extra] = ()) -> None:
        self.plan = plan
        self.venv = venv
        self.extras = tuple(extras)
        self.run_dir = plan.stack_dir / "run"
        self.logs_dir = plan.stack_dir / "logs"
        # What this object started, so a failed `up` stops only that.
        self.spawned: list[str] = []

    # Records -------------------------------------------------------------------------

    def _pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def pid(self, name: str) -> int | None:
        return recorded_pid(self._pid_file(name), self.plan.stack_dir)

    # Environment and executables -----------------------------------------------------

    def environment_for(self, environment: Mapping[str, str]) -> dict[str, str]:
        """A process's whole environment: `environment` over the basics, and the marker."""
        env = {
            "PATH": f"{self.venv / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": os.environ.get("HOME", str(self.plan.stack_dir)),
            "LANG": "C.UTF-8",
        }
        env.update(environment)
        env[STACK_MARKER] = str(self.plan.stack_dir)
        return env

    def _executable(self, name: str, service: LocalService) -> str:
        candidates = [self.venv / "bin" / name]
        if service.postgres is not None:
            candidates.insert(0, postgres_bin(service.postgres.major) / name)
        for candidate in candidates:
            if candidate.is_file():
                return str(candidate)
        found = shutil.which(name)
        if found is None:
            raise StackError(f"{service.name}: {name} is not installed here")
        return found

    # Starting --------------------------------------------------------------------------

    def _spawn(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        stop_signal: signal.Signals = signal.SIGTERM,
    ) -> int:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        with open(self.logs_dir / f"{name}.log", "ab") as log:
            process = subprocess.Popen(
                list(argv),
                cwd=REPO,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._pid_file(name).write_text(f"{process.pid}\n")
        self.spawned.append(name)
        # The start order, and how each stops: `stop` needs no plan (nor the env file).
        with open(self.run_dir / ORDER_FILE, "a") as order:
            order.write(f"{name} {stop_signal.name}\n")
        return process.pid

    def healthy(self, service: LocalService) -> bool:
        if service.health is None:
            return self.pid(service.name) is not None
        argv = list(service.health.argv)
        if service.health.shell:
            argv = ["/bin/sh", "-c", " ".join(argv)]
        else:
            argv[0] = self._executable(argv[0], service)
        try:
            done = subprocess.run(
                argv,
                cwd=REPO,
                env=self.environment_for(service.environment),
                capture_output=True,
                timeout=30,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return False
        return done.returncode == 0

    def _wait_healthy(self, name: str, check: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.pid(name) is None:
                raise StackError(f"{name} exited while starting; {self._log_tail(name)}")
            if check():
                return
            if time.monotonic() > deadline:
                raise StackError(
                    f"{name} not healthy after {timeout:.0f} s; {self._log_tail(name)}"
                )
            time.sleep(1.0)

    def _log_tail(self, name: str, lines: int = 15) -> str:
        log = self.logs_dir / f"{name}.log"
        try:
            tail = log.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return f"no log at {log}"
        return f"last lines of {log}:\n  " + "\n  ".join(tail)

    def up(self, timeout: float = 180.0) -> None:
        """Start whatever is not running yet, each once its dependencies are healthy."""
        for extra in self.extras:
            if self.pid(extra.name) is None:
                self._spawn(extra.name, extra.argv, self.environment_for({}))
            self._wait_healthy(extra.name, lambda url=extra.health_url: _get_ok(url), timeout)
            if extra.setup is not None:
                extra.setup()
        for service in self.plan.start_order():
            if self.pid(service.name) is None:
                self.start(service)
            self._wait_healthy(service.name, lambda s=service: self.healthy(s), timeout)
            if service.postgres is not None:
                self._create_database(service)

    def start(
        self,
        service: LocalService,
        *,
        wrapper: Sequence[str] = (),
        environment: Mapping[str, str] | None = None,
    ) -> int:
        """Start `service` without waiting for it; `wrapper` goes before its command (the
        tests run the daemon under `faketime`), `environment` over its own."""
        if service.postgres is not None:
            return self._start_postgres(service)
        argv = [*wrapper, self._executable(service.argv[0], service), *service.argv[1:]]
        for local in service.volumes.values():
            local.mkdir(parents=True, exist_ok=True)
        self._prepare_dagster_home(service)
        env = self.environment_for({**service.environment, **(environment or {})})
        return self._spawn(service.name, argv, env)

    def _prepare_dagster_home(self, service: LocalService) -> None:
        """The image's DAGSTER_HOME holds the rendered compose instance (Dockerfile)."""
        from deploy.instance.render import render_text

        home = service.environment.get("DAGSTER_HOME")
        if home:
            Path(home).mkdir(parents=True, exist_ok=True)
            (Path(home) / "dagster.yaml").write_text(render_text("compose"))

    # PostgreSQL ------------------------------------------------------------------------

    def _start_postgres(self, service: LocalService) -> int:
        assert service.postgres is not None
        # First: it installs the server, which creates the postgres user the rest needs.
        postgres_bin(service.postgres.major, install=True)
        data = service.volumes[POSTGRES_DATA]
        sockets = self.run_dir / "postgres"
        port = service.ports[5432]
        for directory in (data, sockets):
            directory.mkdir(parents=True, exist_ok=True)
            directory.chmod(0o700)
            _own(directory)
        if not (data / "PG_VERSION").exists():
            password_file = self.run_dir / "postgres-password"
            write_private(password_file, service.postgres.password + "\n")
            _own(password_file)
            try:
                done = subprocess.run(
                    _as_postgres_user(
                        [
                            self._executable("initdb", service),
                            "-D",
                            str(data),
                            "-U",
                            service.postgres.user,
                            f"--pwfile={password_file}",
                            "--auth-host=scram-sha-256",
                            "--auth-local=peer",
                            "--encoding=UTF8",
                            "--no-locale",
                        ]
                    ),
                    capture_output=True,
                    text=True,
                    check=False,
                )
            finally:
                password_file.unlink(missing_ok=True)
            if done.returncode != 0:
                raise StackError(f"{service.name}: initdb failed: {done.stderr.strip()}")
        argv = [
            self._executable("postgres", service),
            "-D",
            str(data),
            "-p",
            str(port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-k",
            str(sockets),
        ]
        # SIGINT is its fast shutdown; SIGTERM would wait for its clients to leave.
        return self._spawn(
            service.name, _as_postgres_user(argv), self.environment_for({}), signal.SIGINT
        )

    def _create_database(self, service: LocalService) -> None:
        """The image's entrypoint creates POSTGRES_DB on a new data directory; so does this."""
        assert service.postgres is not None
        db = service.postgres
        env = self.environment_for({"PGPASSWORD": db.password})
        connect = ["-h", "127.0.0.1", "-p", str(service.ports[5432]), "-U", db.user]
        exists = subprocess.run(
            [
                self._executable("psql", service),
                *connect,
                "-d",
                "postgres",
                "-tAc",
                f"SELECT 1 FROM pg_database WHERE datname = '{db.database}'",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if exists.returncode != 0:
            raise StackError(f"{service.name}: cannot connect: {exists.stderr.strip()}")
        if exists.stdout.strip() != "1":
            created = subprocess.run(
                [self._executable("createdb", service), *connect, db.database],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if created.returncode != 0:
                raise StackError(f"{service.name}: createdb failed: {created.stderr.strip()}")

    # Stopping and status ---------------------------------------------------------------

    def kill(self, name: str) -> None:
        """End a service and every process it started at once (SIGKILL), as a container's
        end would; `up` starts it again."""
        pid = self.pid(name)
        if pid is None:
            raise StackError(f"{name} is not running")
        _signal_group(pid, signal.SIGKILL)
        _wait_group_gone(pid, 30)

    def status(self) -> list[ServiceState]:
        states = []
        for extra in self.extras:
            pid = self.pid(extra.name)
            states.append(
                ServiceState(extra.name, pid, pid is not None and _get_ok(extra.health_url))
            )
        for service in self.plan.start_order():
            pid = self.pid(service.name)
            states.append(
                ServiceState(service.name, pid, pid is not None and self.healthy(service))
            )
        return states


def _get_ok(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return 200 <= response.status < 300
    except OSError:
        return False


def stop(stack_dir: Path, timeout: float = 30.0, *, only: Sequence[str] | None = None) -> list[str]:
    """Stop what `up` started under `stack_dir`, the last started first, each with its
    stop signal; then end by force any process still carrying the stack's marker, and
    return those ("pid command"). Needs no plan: it works after the env file is gone."""
    run_dir = stack_dir / "run"
    order_file = run_dir / ORDER_FILE
    try:
        started = [line.split() for line in order_file.read_text().splitlines() if line.strip()]
    except OSError:
        started = []
    if only is not None:
        started = [entry for entry in started if entry[0] in only]
    forced: list[str] = []
    pending = list(reversed(started))
    while pending:
        name, sig_name = pending.pop(0)
        pid = recorded_pid(run_dir / f"{name}.pid", stack_dir)
        if pid is not None:
            sig = signal.Signals[sig_name]
            if sig is signal.SIGINT and only is None:
                # The database after whatever of the services stopped before it is left (a
                # run worker still writing its last events, say), which needs it until then;
                # what started before the database is still to be stopped in its turn.
                later = {recorded_pid(run_dir / f"{n}.pid", stack_dir) for n, _ in pending}
                forced += _sweep(stack_dir, spare={pid, *later} - {None}, timeout=timeout)
            _signal_group(pid, sig)
            _wait_group_gone(pid, timeout)
        (run_dir / f"{name}.pid").unlink(missing_ok=True)
    if only is not None:
        return forced
    order_file.unlink(missing_ok=True)
    return forced + _sweep(stack_dir, spare=set(), timeout=timeout)


def _sweep(stack_dir: Path, *, spare: set[int | None], timeout: float) -> list[str]:
    """End by force every process carrying the stack's marker but those of the process
    groups `spare`; each as "pid command"."""
    found = [pid for pid in marked_processes(stack_dir) if _group_of(pid) not in spare]
    described = [f"{pid} {_command(pid)}" for pid in found]
    for pid in found:
        _signal_group(pid, signal.SIGKILL)
    _wait_gone(found, timeout)
    return described


def _command(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return " ".join(raw.decode(errors="replace").split("\0")).strip()[:120]


def _group_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _wait_group_gone(pgid: int, timeout: float) -> None:
    """Until no process of the group is left: a service's children end after it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        except PermissionError:
            pass
        members = [pid for pid in _pids() if _group_of(pid) == pgid and alive(pid)]
        if not members:
            return
        if time.monotonic() > deadline:
            _signal_group(pgid, signal.SIGKILL)
            deadline = time.monotonic() + timeout
        time.sleep(0.2)


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def postgres_bin(major: int, *, install: bool = False) -> Path:
    """Debian's PostgreSQL server binaries of `major`; with `install`, installed with
    apt-get if missing and possible."""
    bindir = Path(f"/usr/lib/postgresql/{major}/bin")
    missing = not (bindir / "postgres").is_file()
    if install and missing and shutil.which(APT_GET) and os.geteuid() == 0:
        for command in (
            [APT_GET, "update", "-qq"],
            [APT_GET, "install", "-y", "-qq", f"postgresql-{major}"],
        ):
            subprocess.run(
                command,
                env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
                capture_output=True,
                check=False,
            )
    if not (bindir / "postgres").is_file():
        raise StackError(
            f"PostgreSQL {major} server not found in {bindir}: apt-get install postgresql-{major}"
        )
    return bindir


def _as_postgres_user(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root; as root, run it as Debian's postgres user."""
    if os.geteuid() != 0:
        return argv
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--", *argv]


def write_private(path: Path, text: str) -> None:
    """`text` in `path`, readable by its owner only from the moment it exists."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)


def _own(path: Path) -> None:
    if os.geteuid() == 0:
        try:
            shutil.chown(path, "postgres", "postgres")
        except LookupError:
            raise StackError(
                "no postgres user: Debian's postgresql package creates it (apt-get install "
                "postgresql)"
            ) from None


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _wait_gone(pids: Sequence[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            for pid in pids:
                _signal_group(pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout
        time.sleep(0.2)


def iter_urls(plan: Plan, extras: Sequence[Extra]) -> Iterator[str]:
    for extra in extras:
        yield f"{extra.name}: {extra.url}"
    for service in plan.services:
        for container, local in service.ports.items():
            if service.postgres is not None:
                yield (
                    f"{service.name}: postgresql://{service.postgres.user}@127.0.0.1:{local}/"
                    f"{service.postgres.database}"
                )
            elif container == 3000:
                yield f"{service.name}: http://127.0.0.1:{local}"
            else:
                yield f"{service.name}: 127.0.0.1:{local}"
