"""docker-compose.yml and the Dockerfile, read the way a user running `docker compose up` would
meet them: pinned images, Temporal on PostgreSQL, the search attributes the worker needs, the
start order, graceful shutdown, and nothing published beyond 127.0.0.1.

Docker is not needed: these tests only read the files."""

from __future__ import annotations

import json
import re
import shlex
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

SEARCH_ATTRIBUTES = ("DurableStatus", "DurableStep")
TEMPORAL_SERVER_IMAGES = ("temporalio/server", "temporalio/auto-setup")
POSTGRES_PLUGINS = ("postgres12", "postgres12_pgx")
# How many version components make a tag specific for images whose short tags float: python:3.11
# moves with every 3.11.x release and postgres:16 with every 16.x one.
FULL_VERSION_PARTS = {
    "python": 3,
    "postgres": 2,
    "temporalio/server": 3,
    "temporalio/auto-setup": 3,
    "temporalio/admin-tools": 3,
    "temporalio/ui": 3,
}


# --- reading the files --------------------------------------------------------------------


@cache
def compose() -> dict[str, Any]:
    assert COMPOSE.exists(), "docker-compose.yml is missing from the repository root"
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict), "docker-compose.yml is not a YAML mapping"
    return data


def services() -> dict[str, dict[str, Any]]:
    found = compose().get("services")
    assert isinstance(found, dict) and found, "docker-compose.yml defines no services"
    return found


_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def interpolate(value: str) -> str:
    """What Compose makes of `value` with no variables set: `${X:-default}` is the default."""

    def replace(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        operator, default = match[2], match[3]
        return default if operator in (":-", "-") else ""

    return _VARIABLE.sub(replace, value)


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) if "=" in item else (item, "") for item in env)
        return {key: interpolate(value) for key, value in pairs}
    return {key: interpolate("" if value is None else str(value)) for key, value in env.items()}


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    """Dependency name -> condition, for both the list and the mapping syntax."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def words(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    return [str(part) for part in value]


def script_text(service: dict[str, Any]) -> str:
    """The service's entrypoint and command as one shell text, line continuations joined."""
    parts = words(service.get("entrypoint")) + words(service.get("command"))
    return interpolate("\n".join(parts)).replace("\\\n", " ")


@cache
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, comments dropped and continuations joined."""
    assert DOCKERFILE.exists(), "the Dockerfile the worker image is built from is missing"
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile()
    starts = [i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    assert starts, "the Dockerfile has no FROM line"
    return instructions[starts[-1] :]


def dockerfile_exec(keyword: str) -> list[str] | None:
    found = [rest for kw, rest in final_stage() if kw == keyword]
    if not found:
        return None
    try:
        value = json.loads(found[-1])
    except json.JSONDecodeError:
        return ["/bin/sh", "-c", found[-1]]
    return [str(part) for part in value]


def image_problem(image: str) -> str | None:
    """Why `image` is not pinned to a specific version, or None if it is."""
    if "$" in image:
        return "comes from a variable, so the file alone does not say which version runs"
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" not in last:
        return None if digest else "has no tag, so Docker pulls `latest`"
    repository, tag = name.rsplit(":", 1)
    if tag == "latest" or not re.search(r"\d", tag):
        return f"has the floating tag {tag!r}"
    parts = FULL_VERSION_PARTS.get(repository.removeprefix("docker.io/").removeprefix("library/"))
    version = re.match(r"\d+(\.\d+)*", tag)
    if parts and (version is None or version[0].count(".") + 1 < parts):
        return f"has the tag {tag!r}, which moves as new {repository} releases come out"
    return None


def builds_from_dockerfile(service: dict[str, Any]) -> bool:
    build = service.get("build")
    if build is None:
        return False
    if isinstance(build, str):
        context, file = build, "Dockerfile"
    else:
        context, file = build.get("context", "."), build.get("dockerfile", "Dockerfile")
    return (ROOT / context / file).resolve() == DOCKERFILE


def effective_command(service: dict[str, Any]) -> list[str]:
    """What the container runs: Compose's entrypoint/command over the Dockerfile's."""
    entrypoint: list[str] = []
    default_cmd: list[str] = []
    if "entrypoint" in service:
        entrypoint = words(service["entrypoint"])
    elif builds_from_dockerfile(service):
        entrypoint = dockerfile_exec("ENTRYPOINT") or []
        default_cmd = dockerfile_exec("CMD") or []
    command = words(service["command"]) if "command" in service else default_cmd
    return entrypoint + command


def runs_durable(service: dict[str, Any], subcommand: str) -> bool:
    argv = effective_command(service)
    return len(argv) >= 2 and Path(argv[0]).name == "durable" and argv[1] == subcommand


def service_running(subcommand: str) -> tuple[str, dict[str, Any]]:
    found = [(n, s) for n, s in services().items() if runs_durable(s, subcommand)]
    assert found, f"no service in docker-compose.yml runs `durable {subcommand}`"
    return found[0]


def temporal_server() -> tuple[str, dict[str, Any]]:
    found = [
        (name, s)
        for name, s in services().items()
        if str(s.get("image", "")).startswith(TEMPORAL_SERVER_IMAGES)
    ]
    assert found, (
        "docker-compose.yml has no Temporal server (an image from "
        f"{' or '.join(TEMPORAL_SERVER_IMAGES)})"
    )
    return found[0]


def postgres_service() -> tuple[str, dict[str, Any]]:
    found = [
        (name, s)
        for name, s in services().items()
        if str(s.get("image", "")).split(":")[0] in ("postgres", "library/postgres")
    ]
    assert found, "docker-compose.yml has no PostgreSQL service (image postgres:...)"
    return found[0]


def search_attribute_creators() -> dict[str, str]:
    """Search attribute -> the service whose command creates it as a Keyword."""
    created: dict[str, str] = {}
    for name, service in services().items():
        for line in script_text(service).splitlines():
            if "search-attribute create" not in line:
                continue
            argv = shlex.split(line)
            pairs = list(pairwise(argv))
            names = [b for a, b in pairs if a == "--name"]
            types = [b for a, b in pairs if a == "--type"]
            for attribute, kind in zip(names, types, strict=False):
                if kind.lower() == "keyword":
                    created.setdefault(attribute, name)
    return created


# --- docker-compose.yml -------------------------------------------------------------------


def test_every_image_is_pinned_or_built_here() -> None:
    problems = []
    for name, service in services().items():
        image, build = service.get("image"), service.get("build")
        if image is None and build is None:
            problems.append(f"service {name!r} has neither an image nor a build")
        elif image is not None and (problem := image_problem(str(image))):
            what = "tags the image it builds as" if build is not None else "uses image"
            problems.append(f"service {name!r} {what} {image!r}, which {problem}")
    assert not problems, (
        "pin every image to a specific version, so each `docker compose up` runs the same "
        "software:\n  " + "\n  ".join(problems)
    )


def test_temporal_persists_to_postgresql() -> None:
    name, server = temporal_server()
    env = environment(server)
    assert env.get("DB") in POSTGRES_PLUGINS, (
        f"the Temporal server ({name}) does not use PostgreSQL persistence: DB is "
        f"{env.get('DB')!r}, expected one of {POSTGRES_PLUGINS}"
    )
    pg_name, _ = postgres_service()
    assert env.get("POSTGRES_SEEDS") == pg_name, (
        f"the Temporal server ({name}) points POSTGRES_SEEDS at {env.get('POSTGRES_SEEDS')!r}, "
        f"not at the {pg_name!r} service"
    )
    assert env.get("POSTGRES_USER") and env.get("POSTGRES_PWD") is not None, (
        f"the Temporal server ({name}) has no POSTGRES_USER/POSTGRES_PWD to log in to PostgreSQL"
    )
    assert depends_on(server).get(pg_name) == "service_healthy", (
        f"the Temporal server ({name}) does not wait for {pg_name!r} to be healthy, so its first "
        "start can fail on a database that is still initialising"
    )


def test_temporal_schema_and_server_versions_match() -> None:
    """The admin-tools image carries the schema; the server refuses a schema it does not know."""
    _, server = temporal_server()
    server_tag = str(server["image"]).rsplit(":", 1)[1]
    for name, service in services().items():
        image = str(service.get("image", ""))
        if image.startswith("temporalio/admin-tools:"):
            tag = image.rsplit(":", 1)[1]
            assert tag.split("-")[0] == server_tag, (
                f"service {name!r} runs admin-tools {tag} against Temporal server {server_tag}: "
                "keep them on the same version so the schema matches the server"
            )


def test_services_that_others_wait_for_have_healthchecks() -> None:
    pg_name, postgres = postgres_service()
    test = " ".join(words(postgres.get("healthcheck", {}).get("test")))
    assert "pg_isready" in test, (
        f"{pg_name!r} has no pg_isready healthcheck, so nothing can wait for it to accept "
        "connections"
    )
    name, server = temporal_server()
    assert server.get("healthcheck", {}).get("test"), (
        f"the Temporal server ({name}) has no healthcheck, so services that need it start "
        "before it answers"
    )
    for dependant, service in services().items():
        for dependency, condition in depends_on(service).items():
            assert dependency in services(), (
                f"service {dependant!r} depends on {dependency!r}, which is not defined"
            )
            if condition == "service_healthy":
                assert services()[dependency].get("healthcheck"), (
                    f"service {dependant!r} waits for {dependency!r} to be healthy, but "
                    f"{dependency!r} has no healthcheck, so `up` fails"
                )


def test_search_attributes_are_registered_before_the_worker_starts() -> None:
    creators = search_attribute_creators()
    missing = [a for a in SEARCH_ATTRIBUTES if a not in creators]
    assert not missing, (
        f"no service runs `temporal operator search-attribute create --name ... --type Keyword` "
        f"for {missing}; the worker refuses to start without them"
    )
    worker_name, worker = service_running("worker")
    for attribute, creator in creators.items():
        if attribute not in SEARCH_ATTRIBUTES:
            continue
        assert depends_on(worker).get(creator) == "service_completed_successfully", (
            f"the worker ({worker_name}) does not wait for {creator!r} to finish registering "
            f"{attribute}, so it can start first and refuse to run"
        )
        assert depends_on(services()[creator]), (
            f"{creator!r} registers {attribute} without waiting for the Temporal server"
        )


def test_worker_gets_its_settings() -> None:
    name, worker = service_running("worker")
    env = environment(worker)
    server_name, _ = temporal_server()
    assert env.get("TEMPORAL_ADDRESS") == f"{server_name}:7233", (
        f"the worker ({name}) has TEMPORAL_ADDRESS={env.get('TEMPORAL_ADDRESS')!r}; it should "
        f"reach the {server_name!r} service at {server_name}:7233"
    )
    assert env.get("DURABLE_TASK_QUEUE"), (
        f"the worker ({name}) has no DURABLE_TASK_QUEUE, the queue runs are started on"
    )
    url = urlsplit(env.get("DATABASE_URL", ""))
    pg_name, _ = postgres_service()
    assert url.scheme in ("postgresql", "postgres") and url.hostname == pg_name, (
        f"the worker ({name}) has DATABASE_URL={env.get('DATABASE_URL')!r}; it should be a "
        f"postgresql:// URL to the {pg_name!r} service"
    )


def test_worker_and_migrate_share_the_database_and_image() -> None:
    worker_name, worker = service_running("worker")
    migrate_name, migrate = service_running("migrate")
    migrated, used = (urlsplit(environment(s)["DATABASE_URL"]) for s in (migrate, worker))
    assert (migrated.hostname, migrated.port, migrated.path) == (
        used.hostname,
        used.port,
        used.path,
    ), f"{migrate_name!r} migrates a different database than the worker ({worker_name}) uses"
    for name, service in ((worker_name, worker), (migrate_name, migrate)):
        assert builds_from_dockerfile(service), (
            f"service {name!r} is not built from the repository's Dockerfile, so it does not "
            "run this code"
        )
    assert worker.get("image") == migrate.get("image"), (
        f"{migrate_name!r} and the worker ({worker_name}) run different images"
    )


def test_worker_starts_after_migrations() -> None:
    worker_name, worker = service_running("worker")
    migrate_name, migrate = service_running("migrate")
    assert depends_on(worker).get(migrate_name) == "service_completed_successfully", (
        f"the worker ({worker_name}) does not wait for `durable migrate` ({migrate_name}) to "
        "finish, so steps can hit tables that do not exist yet"
    )
    pg_name, _ = postgres_service()
    assert depends_on(migrate).get(pg_name) == "service_healthy", (
        f"`durable migrate` ({migrate_name}) does not wait for {pg_name!r} to be healthy"
    )
    assert str(migrate.get("restart", "no")) not in ("always", "unless-stopped"), (
        f"`durable migrate` ({migrate_name}) restarts even after it succeeds, so it never "
        "completes and the worker never starts"
    )


def _seconds(duration: str) -> float:
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"bad duration {duration!r}"
    return sum(float(n) * units[u] for n, u in parts)


def test_worker_stops_gracefully() -> None:
    name, worker = service_running("worker")
    stop_signal = worker.get("stop_signal", "SIGTERM")
    assert stop_signal in ("SIGTERM", "TERM"), (
        f"the worker ({name}) is stopped with {stop_signal}; it shuts down gracefully on SIGTERM"
    )
    grace = _seconds(str(worker.get("stop_grace_period", "10s")))
    shutdown = float(environment(worker).get("DURABLE_GRACEFUL_SHUTDOWN_SECONDS", "30"))
    assert grace > shutdown, (
        f"Docker kills the worker ({name}) {grace:g}s after SIGTERM, before running steps get "
        f"their {shutdown:g}s (DURABLE_GRACEFUL_SHUTDOWN_SECONDS) to finish: raise "
        "stop_grace_period"
    )
    assert "container_name" not in worker, (
        f"the worker ({name}) has a fixed container_name, so `--scale worker=N` fails"
    )


def _published(port: str | int | dict[str, Any]) -> tuple[str | None, str]:
    """(host IP or None, the port as written) of a `ports:` entry."""
    if isinstance(port, dict):
        return port.get("host_ip"), json.dumps(port)
    text = interpolate(str(port))
    mapping = text.split("/", 1)[0]
    if mapping.startswith("["):  # [::1]:7233:7233
        host, _, _ = mapping[1:].partition("]")
        return host, text
    parts = mapping.split(":")
    return (parts[0] if len(parts) == 3 else None), text


def test_published_ports_bind_to_localhost_only() -> None:
    published = 0
    for name, service in services().items():
        for port in service.get("ports") or []:
            host, text = _published(port)
            published += 1
            assert host == "127.0.0.1", (
                f"service {name!r} publishes {text} on every network interface of the host; "
                f"bind it to 127.0.0.1 (e.g. 127.0.0.1:{text.split(':')[-1]}), as nothing here "
                "has authentication"
            )
    assert published, "docker-compose.yml publishes no port: Temporal and its UI are unreachable"


def test_ui_and_temporal_are_reachable_from_the_host() -> None:
    server_name, server = temporal_server()
    host_ports = [_published(p)[1].split(":")[-1] for p in server.get("ports") or []]
    assert "7233" in host_ports, (
        f"the Temporal server ({server_name}) does not publish 7233, so `durable start` on the "
        "host cannot reach it"
    )
    uis = [
        (n, s) for n, s in services().items() if str(s.get("image", "")).startswith("temporalio/ui")
    ]
    assert uis, "docker-compose.yml has no Temporal UI (temporalio/ui)"
    ui_name, ui = uis[0]
    assert environment(ui).get("TEMPORAL_ADDRESS") == f"{server_name}:7233", (
        f"the Temporal UI ({ui_name}) does not point at {server_name}:7233"
    )
    assert ui.get("ports"), f"the Temporal UI ({ui_name}) publishes no port"


def test_mounted_files_exist() -> None:
    """A missing bind-mount source is silently created as an empty directory by Docker."""
    for name, service in services().items():
        for volume in service.get("volumes") or []:
            source = volume.get("source") if isinstance(volume, dict) else volume.split(":")[0]
            if source and source.startswith((".", "/")):
                assert (ROOT / source).exists(), (
                    f"service {name!r} mounts {source}, which is not in the repository"
                )


def _init_sql() -> str:
    _, postgres = postgres_service()
    scripts = []
    for volume in postgres.get("volumes") or []:
        source, _, target = str(volume).partition(":")
        if target.startswith("/docker-entrypoint-initdb.d"):
            path = ROOT / source
            scripts += [path] if path.is_file() else sorted(path.iterdir())
    return "\n".join(p.read_text() for p in scripts)


def _role(text: str, user: str) -> str:
    """The CREATE ROLE statement of `user` in the init scripts, up to its semicolon."""
    found = re.search(rf"CREATE (?:ROLE|USER) {user}\b[^;]*;", text)
    assert found, f"DATABASE_URL logs in as {user!r}, but no PostgreSQL init script creates it"
    return found[0]


def test_the_migrating_role_owns_the_tables_and_no_service_logs_in_as_it_but_migrate() -> None:
    """`migrate` logs in as the owner of the app database; the worker and the API as a role that
    is a member of durable_app only: not superuser, no BYPASSRLS, not the owner, so row-level
    security binds every query they make."""
    text = _init_sql()
    owner = urlsplit(environment(service_running("migrate")[1])["DATABASE_URL"])
    database = owner.path.lstrip("/")
    created = re.search(rf"CREATE DATABASE {database} OWNER (\w+)", text)
    assert created, f"no PostgreSQL init script creates database {database!r} with an owner"
    assert created[1] == owner.username, (
        f"migrate logs in as {owner.username!r}, but {database!r} is owned by {created[1]!r}: "
        "migrations could not create its tables"
    )
    assert "SUPERUSER" not in _role(text, str(owner.username)).replace("NOSUPERUSER", "")
    for name, service in services().items():
        url = environment(service).get("DATABASE_URL")
        if url is None or name == "migrate" or not builds_from_dockerfile(service):
            continue
        user = str(urlsplit(url).username)
        assert user not in ("postgres", owner.username), (
            f"service {name!r} logs into PostgreSQL as {user!r}, the superuser or the owner"
        )
        role = _role(text, user)
        assert re.search(r"\bIN ROLE durable_app\b", role), (
            f"{user!r} ({name}) is not a member of durable_app: {role}"
        )
        for power in ("SUPERUSER", "BYPASSRLS", "CREATEROLE", "CREATEDB", "INHERIT"):
            assert f"NO{power}" in role, f"{user!r} ({name}) may have {power}: {role}"
        assert not re.search(rf"GRANT \w+ TO {user}\b|OWNER TO {user}\b", text), (
            f"{user!r} ({name}) is granted a role or owns something beyond durable_app"
        )


# --- Dockerfile ---------------------------------------------------------------------------


def test_dockerfile_base_image_is_pinned() -> None:
    stages: set[str] = set()
    for keyword, rest in dockerfile():
        if keyword != "FROM":
            continue
        image, *alias = [w for w in rest.split() if not w.startswith("--")]
        if len(alias) == 2 and alias[0].upper() == "AS":
            stages.add(alias[1])
        if image in stages:
            continue  # builds on an earlier stage of this Dockerfile
        problem = image_problem(image)
        assert problem is None, (
            f"the Dockerfile builds FROM {image}, which {problem}: pin a specific version"
        )


def test_dockerfile_runs_the_worker() -> None:
    entrypoint = dockerfile_exec("ENTRYPOINT") or []
    cmd = dockerfile_exec("CMD") or []
    argv = entrypoint + cmd
    assert argv[:2] == ["durable", "worker"] or argv[-2:] == ["durable", "worker"], (
        f"the image runs {argv} by default, not `durable worker`"
    )
    assert argv[:1] != ["/bin/sh"], (
        "the Dockerfile's ENTRYPOINT/CMD are in shell form, so a shell gets SIGTERM and the "
        'worker never shuts down gracefully: use the exec form, e.g. ENTRYPOINT ["durable"]'
    )


def test_dockerfile_installs_the_package() -> None:
    runs = " ".join(rest for keyword, rest in final_stage() if keyword == "RUN")
    assert re.search(r"pip install\b[^&;]*\s(\.|/\S+)(\s|$)", runs), (
        "the Dockerfile never runs `pip install` on the project, so the image has no `durable`"
    )


def test_the_api_runs_as_its_own_service_ready_when_its_dependencies_answer() -> None:
    name, api = service_running("api")
    check = " ".join(words(api.get("healthcheck", {}).get("test")))
    assert "/readyz" in check, f"the API ({name}) is healthy only when /readyz says ready"
    assert depends_on(api).get("migrate") == "service_completed_successfully", (
        f"the API ({name}) starts before the migrations that make its tables"
    )
    env = environment(api)
    assert env["DATABASE_URL"] == environment(service_running("worker")[1])["DATABASE_URL"]
    assert env.get("DURABLE_CODEC_KEYS") is None or env.get("DURABLE_CODEC_TOKEN"), (
        "an API on every interface of its container must not serve an open codec endpoint"
    )
    port = env.get("DURABLE_API_PORT", "8400")
    assert any(_published(p)[1].endswith(f":{port}") for p in api.get("ports") or []), (
        f"the API's port {port} is not published to the host"
    )
    grace = _seconds(str(api.get("stop_grace_period", "10s")))
    assert grace > float(env.get("DURABLE_GRACEFUL_SHUTDOWN_SECONDS", "30"))
