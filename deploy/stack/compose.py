"""deploy/docker/compose.yaml read as a plan of local processes: what `make stack` runs.

Each service of the compose file becomes one local process with the command, environment
and health check the container would have, with three kinds of translation and no other:

- paths: the image's working directory is this checkout, its DAGSTER_HOME and virtual
  environment are `.stack/dagster_home` and `.venv`, and each named volume is a directory
  `.stack/volumes/<name>`;
- network: a value that is exactly a service's name is 127.0.0.1, and one that is exactly
  "0.0.0.0" too (everything listens on loopback); one that is exactly a port a service
  exposes is that port's loopback counterpart, PORT_BASE + port (published ports keep
  their host port);
- images: a service built from deploy/docker/Dockerfile runs its command from `.venv`;
  `postgres:<major>` is Debian's PostgreSQL server of the same major version.

A key or an image this module does not translate is an UnsupportedService: a service added
to the compose file without a local counterpart fails `make stack` and the tests, instead of
being left out of what is tested.
"""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "deploy" / "docker" / "compose.yaml"
DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"
# Service keys with a local meaning; any other key is refused.
SUPPORTED_KEYS = frozenset(
    {
        "image",
        "build",
        "command",
        "environment",
        "env_file",
        "volumes",
        "depends_on",
        "expose",
        "ports",
        "healthcheck",
        # The container runtime's, with no process to translate: here a service's output
        # goes to .stack/logs/ and nothing restarts it.
        "restart",
        "logging",
    }
)
# An exposed port P listens on PORT_BASE + P here. Below the kernel's ephemeral ports
# (32768-60999 by default on Linux): an outgoing connection of any process can hold one of
# those at the moment the stack starts, and the service would fail to bind it.
PORT_BASE = 20000
POSTGRES_IMAGE = re.compile(r"postgres:(\d+)(?:[.-].*)?")
POSTGRES_DATA = "/var/lib/postgresql/data"
LOOPBACK = "127.0.0.1"
_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)|(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
    r"|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})"
)


class UnsupportedService(ValueError):
    """A compose service, or one of its settings, that has no local counterpart."""


@dataclass(frozen=True)
class HealthCheck:
    argv: tuple[str, ...]
    shell: bool


@dataclass(frozen=True)
class Postgres:
    """The local counterpart of the `postgres` image: its major version, database, user and
    password, as the image's entrypoint would create them."""

    major: int
    database: str
    user: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class LocalService:
    name: str
    # The command as the container runs it, translated; empty for an image's own (postgres).
    argv: tuple[str, ...]
    environment: Mapping[str, str] = field(repr=False)
    depends_on: tuple[str, ...]
    health: HealthCheck | None
    # Loopback ports it listens on, container port -> local port.
    ports: Mapping[int, int]
    # Container path -> local directory.
    volumes: Mapping[str, Path]
    postgres: Postgres | None = None


@dataclass(frozen=True)
class Plan:
    services: tuple[LocalService, ...]
    stack_dir: Path

    def service(self, name: str) -> LocalService:
        for service in self.services:
            if service.name == name:
                return service
        raise KeyError(name)

    def start_order(self) -> list[LocalService]:
        """Dependencies first (compose's depends_on), otherwise in file order."""
        done: list[LocalService] = []
        pending = list(self.services)
        while pending:
            ready = [s for s in pending if set(s.depends_on) <= {d.name for d in done}]
            if not ready:
                names = ", ".join(s.name for s in pending)
                raise UnsupportedService(f"depends_on has a cycle among {names}")
            done.append(ready[0])
            pending.remove(ready[0])
        return done


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, as compose reads an env file: comments and blank lines skipped, an
    unquoted value ending at " #", matching quotes around a value removed."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip().removeprefix("export ").strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ValueError(f"{path}:{number}: not a KEY=VALUE line")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        else:
            value = re.split(r"\s+#", value, maxsplit=1)[0].rstrip()
        values[key] = value
    return values


def interpolate(node: Any, variables: Mapping[str, str]) -> Any:
    """Compose's $VAR, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}
    and $$."""
    if isinstance(node, dict):
        return {key: interpolate(value, variables) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(item, variables) for item in node]
    if not isinstance(node, str):
        return node

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        if match["bare"]:
            return variables.get(match["bare"], "")
        name, op, arg = match["name"], match["op"], match["arg"] or ""
        value = variables.get(name)
        unset = value is None or (value == "" and op is not None and op.startswith(":"))
        if op is not None and op.endswith("?") and unset:
            raise UnsupportedService(f"{name}: {arg or 'required'}")
        if op is not None and op.endswith("-") and unset:
            return arg
        return value or ""

    return _INTERPOLATION.sub(substitute, node)


@dataclass(frozen=True)
class Image:
    """What deploy/docker/Dockerfile gives every service built from it."""

    workdir: str
    environment: Mapping[str, str]


def read_dockerfile(path: Path = DOCKERFILE) -> Image:
    """The final stage's WORKDIR and ENV (the only settings a service inherits)."""
    text = re.sub(r"\\\n", " ", path.read_text())
    stages = re.split(r"(?m)^FROM\s", text)
    final = stages[-1]
    workdir = ""
    environment: dict[str, str] = {}
    for line in final.splitlines():
        words = line.split(None, 1)
        if len(words) != 2:
            continue
        instruction, rest = words[0].upper(), words[1]
        if instruction == "WORKDIR":
            workdir = rest.strip()
        elif instruction == "ENV":
            for pair in rest.split():
                key, sep, value = pair.partition("=")
                if not sep:
                    raise UnsupportedService(f"{path}: ENV {pair}: use the KEY=VALUE form")
                environment[key] = value
    if not workdir:
        raise UnsupportedService(f"{path}: the final stage sets no WORKDIR")
    return Image(workdir=workdir, environment=environment)


def _mapping(node: Any, where: str) -> dict[str, str]:
    if node is None:
        return {}
    if isinstance(node, list):
        pairs = [str(item).partition("=") for item in node]
        return {key: value for key, _, value in pairs}
    if isinstance(node, dict):
        return {str(key): "" if value is None else str(value) for key, value in node.items()}
    raise UnsupportedService(f"{where}: expected a mapping or a list")


def _argv(node: Any, where: str) -> tuple[str, ...]:
    if node is None:
        return ()
    if isinstance(node, list):
        return tuple(str(item) for item in node)
    raise UnsupportedService(f"{where}: write the command as a list (exec form)")


def _ports(service: Mapping[str, Any], name: str, port_base: int) -> dict[int, int]:
    ports: dict[int, int] = {}
    for spec in service.get("ports", []):
        parts = str(spec).split(":")
        if len(parts) != 3 or parts[0] != LOOPBACK:
            raise UnsupportedService(
                f"{name}: publish ports as {LOOPBACK}:HOST:CONTAINER (got {spec}); the webserver "
                "has no authentication of its own"
            )
        ports[int(parts[2])] = int(parts[1])
    for spec in service.get("expose", []):
        port = int(str(spec))
        ports.setdefault(port, port_base + port)
    return ports


def _volumes(service: Mapping[str, Any], name: str, stack_dir: Path) -> dict[str, Path]:
    mounts: dict[str, Path] = {}
    for spec in service.get("volumes", []):
        if not isinstance(spec, str):
            raise UnsupportedService(f"{name}: volumes in the short form only (NAME:/path)")
        volume, sep, target = spec.partition(":")
        if not sep or volume.startswith((".", "/")):
            raise UnsupportedService(f"{name}: {spec}: only named volumes (NAME:/path)")
        mounts[target.split(":")[0]] = stack_dir / "volumes" / volume
    return mounts


class _Translator:
    """Container paths, host names and ports to their local counterparts, in values the
    compose file and the image set (never in the env file's: those are the operator's)."""

    def __init__(
        self,
        paths: Mapping[str, Path],
        hosts: frozenset[str],
        ports: Mapping[int, int],
    ) -> None:
        self._paths = dict(paths)
        # A path at the start of the value or of a file:// URI, longest first, in one pass.
        prefixes = "|".join(re.escape(p) for p in sorted(paths, key=len, reverse=True))
        self._path = re.compile(rf"^(file://)?({prefixes})(?=/|$)") if paths else None
        self._hosts = hosts
        self._ports = ports

    def __call__(self, value: str, *, names: bool = True) -> str:
        """`value` translated; with `names` False (a value the operator's variables made, a
        password say) only a container path is."""
        if names and (value in self._hosts or value == "0.0.0.0"):
            return LOOPBACK
        if names and value.isdigit() and int(value) in self._ports:
            return str(self._ports[int(value)])
        if self._path is None:
            return value
        return self._path.sub(lambda m: f"{m[1] or ''}{self._paths[m[2]]}", value)


def plan(
    *,
    env_file: Path,
    stack_dir: Path,
    venv: Path,
    compose_file: Path = COMPOSE_FILE,
    dockerfile: Path = DOCKERFILE,
    environ: Mapping[str, str] | None = None,
    port_base: int = PORT_BASE,
) -> Plan:
    """The local processes for `compose_file`'s services, with `env_file` as the project's
    .env (compose's interpolation values and every service's env_file) and `environ` over
    it, as compose lets the shell's variables win."""
    document = yaml.safe_load(compose_file.read_text())
    services_node = document.get("services") if isinstance(document, dict) else None
    if not isinstance(services_node, dict) or not services_node:
        raise UnsupportedService(f"{compose_file}: no services")
    env_values = read_env_file(env_file)
    variables = {**env_values, **(environ or {})}
    image = read_dockerfile(dockerfile)

    raw: dict[str, dict[str, Any]] = {}
    # Before interpolation: a value made of the operator's variables is never translated.
    literal: dict[str, dict[str, Any]] = {}
    for name, node in services_node.items():
        if not isinstance(node, dict):
            raise UnsupportedService(f"{name}: not a mapping")
        unknown = sorted(set(node) - SUPPORTED_KEYS)
        if unknown:
            raise UnsupportedService(f"{name}: no local counterpart for {', '.join(unknown)}")
        raw[str(name)] = interpolate(node, variables)
        literal[str(name)] = node

    all_ports: dict[int, int] = {}
    for name, service in raw.items():
        for container, local in _ports(service, name, port_base).items():
            if container in all_ports:
                raise UnsupportedService(
                    f"{name}: port {container} is another service's too; on loopback "
                    "every service needs its own"
                )
            all_ports[container] = local

    services = []
    for name, service in raw.items():
        volumes = _volumes(service, name, stack_dir)
        paths: dict[str, Path] = {target: local for target, local in volumes.items()}
        translate = _Translator(paths, frozenset(raw), all_ports)
        environment: dict[str, str] = {}
        postgres_major: int | None = None
        if "build" in service:
            paths.setdefault(image.workdir, REPO)
            for key, local in (("DAGSTER_HOME", stack_dir / "dagster_home"), ("VIRTUAL_ENV", venv)):
                if key in image.environment:
                    paths.setdefault(image.environment[key], local)
            translate = _Translator(paths, frozenset(raw), all_ports)
            environment.update({k: translate(v) for k, v in image.environment.items()})
            for listed in service.get("env_file", []):
                if listed != ".env":
                    raise UnsupportedService(f"{name}: env_file {listed}: only .env")
                environment.update(env_values)
            argv = _argv(service.get("command"), f"{name}.command")
            if not argv:
                raise UnsupportedService(f"{name}: a built service needs its command")
        else:
            match = POSTGRES_IMAGE.fullmatch(str(service.get("image", "")))
            if match is None:
                raise UnsupportedService(
                    f"{name}: no local counterpart for image {service.get('image')!r}"
                )
            if "command" in service:
                raise UnsupportedService(f"{name}: postgres runs with the image's own command")
            if POSTGRES_DATA not in volumes:
                raise UnsupportedService(f"{name}: mount a volume on {POSTGRES_DATA}")
            postgres_major = int(match[1])
            argv = ()
        given = _mapping(literal[name].get("environment"), f"{name}.environment")
        for key, value in _mapping(service.get("environment"), f"{name}.environment").items():
            environment[key] = translate(value, names="$" not in given.get(key, ""))
        postgres = None
        if postgres_major is not None:
            # As the image's entrypoint reads them.
            user = environment.get("POSTGRES_USER", "postgres")
            for setting in ("POSTGRES_USER", "POSTGRES_DB"):
                value = environment.get(setting, "postgres")
                if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", value):
                    raise UnsupportedService(f"{name}: {setting} {value!r} is not a plain name")
            postgres = Postgres(
                major=postgres_major,
                database=environment.get("POSTGRES_DB") or user,
                user=user,
                password=environment.get("POSTGRES_PASSWORD", ""),
            )
        services.append(
            LocalService(
                name=name,
                argv=tuple(translate(arg) for arg in argv),
                environment=environment,
                depends_on=tuple(_depends_on(service.get("depends_on"), name, raw)),
                health=_health(service.get("healthcheck"), name, translate),
                ports={c: p for c, p in _ports(service, name, port_base).items()},
                volumes=volumes,
                postgres=postgres,
            )
        )
    return Plan(services=tuple(services), stack_dir=stack_dir)


def _depends_on(node: Any, name: str, services: Mapping[str, Any]) -> Sequence[str]:
    if node is None:
        return ()
    names = list(node) if isinstance(node, dict | list) else []
    for dependency in names:
        if dependency not in services:
            raise UnsupportedService(f"{name}: depends on unknown service {dependency}")
        if isinstance(node, dict):
            condition = node[dependency].get("condition", "service_started")
            if condition not in {"service_started", "service_healthy"}:
                raise UnsupportedService(f"{name}: depends_on condition {condition}")
    return [str(dependency) for dependency in names]


def _health(node: Any, name: str, translate: _Translator) -> HealthCheck | None:
    if node is None:
        return None
    test = node.get("test") if isinstance(node, dict) else None
    if not isinstance(test, list) or not test or test[0] not in {"CMD", "CMD-SHELL"}:
        raise UnsupportedService(f"{name}: healthcheck.test must be a CMD or CMD-SHELL list")
    return HealthCheck(
        argv=tuple(translate(str(arg)) for arg in test[1:]),
        shell=test[0] == "CMD-SHELL",
    )
