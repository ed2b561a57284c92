"""Access control on, as the local stack runs it: who may call what, and no secret leaks.

One tracking server with basic-auth on (the session's `auth_server`), default permission
NO_PERMISSIONS; the admin owns an experiment, a run and a registered model with an alias;
`reader` is granted READ on both, `editor` EDIT.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import docker
import pytest
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.server import get_app_client
from testcontainers.core.network import Network

from support.containers import run_to_exit
from support.legacy import MLFLOW2_DIR, build_mlflow2_image
from support.routes import Route, enumerate_routes
from support.stack import AuthServer

pytestmark = pytest.mark.docker
# Connect, read: every route answers at once (a refusal, an error or the data); one that has
# not answered after this long hangs, and fails the matrix.
TIMEOUT = (5, 30)
# Open to anyone: liveness, readiness (/ready, in front of auth: says only whether the
# database answers), the UI's static files, and MLflow's public capability discovery
# (server-info: how the server is configured, no tenant data, by MLflow's design).
OPEN_PREFIXES = ("/health", "/ready", "/static", "/favicon.ico")
OPEN_SUFFIXES = ("/mlflow/server-info",)
# Open to any logged-in user, by MLflow's design (its auth: "generate is open to any
# authenticated user; delete is admin-only"): the demo experiment, no tenant's data.
LOGGED_IN_SUFFIXES = ("/mlflow/demo/generate",)


@dataclass(frozen=True)
class World:
    """What the admin made, who may do what with it, and the values the route matrix fills
    paths and bodies with."""

    experiment_id: str
    run_id: str
    model: str
    reader: tuple[str, str]  # READ on the experiment and the model
    editor: tuple[str, str]  # EDIT on both
    values: dict[str, str]


def make_world(auth_server: AuthServer, name: str) -> World:
    """An experiment with a run, a registered model with a version aliased champion, and
    two users, all named after `name`."""
    url = auth_server.uri_from_host
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_USERNAME", auth_server.admin[0])
        patch.setenv("MLFLOW_TRACKING_PASSWORD", auth_server.admin[1])
        patch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        admin = MlflowClient(tracking_uri=url)
        model = f"authz-{name}-model"
        experiment_id = admin.create_experiment(f"authz-{name}")
        run_id = admin.create_run(experiment_id).info.run_id
        admin.log_param(run_id, "owner", "admin")
        admin.create_registered_model(model)
        admin.create_model_version(model, f"runs:/{run_id}/model", run_id=run_id)
        admin.set_registered_model_alias(model, "champion", "1")
        reader = (f"reader-{name}", f"reader-password-{name}")
        editor = (f"editor-{name}", f"editor-password-{name}")
        users = get_app_client("basic-auth", tracking_uri=url)
        for (user, password), permission in ((reader, "READ"), (editor, "EDIT")):
            users.create_user(user, password)
            users.grant_user_permission(user, "experiment", experiment_id, permission)
            users.grant_user_permission(user, "registered_model", model, permission)
    values = {
        "experiment_id": experiment_id,
        "run_id": run_id,
        "name": model,
        "model_name": model,
        "version": "1",
        "alias": "champion",
        "key": "k",
        "value": "v",
        "username": reader[0],
    }
    return World(experiment_id, run_id, model, reader, editor, values)


@pytest.fixture(scope="module")
def world(auth_server: AuthServer) -> World:
    """The module's world, which its tests only read (or try to change, and are refused)."""
    return make_world(auth_server, "module")


@pytest.fixture
def matrix_world(auth_server: AuthServer) -> World:
    """A world of the route matrix's own: the admin's calls in it change and delete things
    (the users, the model, the experiment), which no other test may meet."""
    return make_world(auth_server, f"matrix-{uuid.uuid4().hex[:6]}")


def call(url: str, route: Route, world: World, auth, session: requests.Session) -> int | str:
    """One call of the route with the world's values in its path, query and body: the HTTP
    status, or the name of the client's error when no answer came (never a refusal)."""
    path = route.path(world.values)
    kwargs = {"params": world.values} if route.method == "GET" else {"json": world.values}
    try:
        return session.request(
            route.method, url + path, auth=auth, timeout=TIMEOUT, **kwargs
        ).status_code
    except requests.RequestException as error:
        return type(error).__name__


def is_open(route: Route) -> bool:
    return route.template.startswith(OPEN_PREFIXES) or route.template.endswith(OPEN_SUFFIXES)


def test_anonymous_callers_are_asked_to_log_in(auth_server: AuthServer) -> None:
    response = requests.get(auth_server.uri_from_host + "/", timeout=10)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert requests.get(auth_server.uri_from_host + "/health", timeout=10).status_code == 200


def test_a_reader_cannot_move_an_alias_register_a_version_or_log_to_others(
    auth_server: AuthServer, world: World
) -> None:
    url = auth_server.uri_from_host + "/api/2.0/mlflow"
    get = requests.get(
        f"{url}/registered-models/get", params={"name": world.model}, auth=world.reader, timeout=10
    )
    assert get.status_code == 200, get.text  # READ reads
    run = requests.get(
        f"{url}/runs/get", params={"run_id": world.run_id}, auth=world.reader, timeout=10
    )
    assert run.status_code == 200, run.text
    refused = {
        "move the alias": (
            "registered-models/alias",
            {"name": world.model, "alias": "champion", "version": "1"},
        ),
        "register a version": (
            "model-versions/create",
            {"name": world.model, "source": f"runs:/{world.run_id}/model", "run_id": world.run_id},
        ),
        "start a run in the admin's experiment": (
            "runs/create",
            {"experiment_id": world.experiment_id},
        ),
        "log to the admin's run": (
            "runs/log-parameter",
            {"run_id": world.run_id, "key": "intruder", "value": "1"},
        ),
    }
    for what, (endpoint, body) in refused.items():
        response = requests.post(f"{url}/{endpoint}", json=body, auth=world.reader, timeout=10)
        assert response.status_code == 403, f"a READ user could {what}: {response.status_code}"
    admin = auth_server.admin
    alias = requests.get(
        f"{url}/registered-models/alias",
        params={"name": world.model, "alias": "champion"},
        auth=admin,
        timeout=10,
    )
    assert alias.json()["model_version"]["version"] == "1"
    params = requests.get(
        f"{url}/runs/get", params={"run_id": world.run_id}, auth=admin, timeout=10
    )
    assert [p["key"] for p in params.json()["run"]["data"]["params"]] == ["owner"]


def test_every_client_logs_in_alike(
    auth_server: AuthServer, world: World, docker_network: Network, monkeypatch
) -> None:
    """Plain HTTP, the UI's own calls (/ajax-api/, with the browser's login), MLflow's 3.x
    client and an MLflow 2.12 client in a container: the user's password is let in, a wrong
    one refused, every time, against the real (scrypt) stored hashes."""
    url = auth_server.uri_from_host
    wrong = (world.reader[0], "not-the-password")
    for api in ("api", "ajax-api"):
        endpoint = f"{url}/{api}/2.0/mlflow/runs/get"
        for login, status in ((world.reader, 200), (wrong, 401), (world.reader, 200), (wrong, 401)):
            answer = requests.get(endpoint, params={"run_id": world.run_id}, auth=login, timeout=30)
            assert answer.status_code == status, (api, login[0], answer.text)
    for login in (world.reader, wrong, world.reader, wrong):
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", login[0])
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", login[1])
        client = MlflowClient(tracking_uri=url)
        if login == world.reader:
            assert client.get_run(world.run_id).data.params == {"owner": "admin"}
        else:
            with pytest.raises(MlflowException, match="401"):
                client.get_run(world.run_id)
    script = (MLFLOW2_DIR / "client_212.py").read_text()
    image = build_mlflow2_image()
    for login in (world.editor, (world.editor[0], "not-the-password")):
        logged = run_to_exit(
            image,
            ["/opt/mlflow212/bin/python", "-c", script, auth_server.uri_in_network],
            network=docker_network,
            env={
                "MLFLOW_TRACKING_USERNAME": login[0],
                "MLFLOW_TRACKING_PASSWORD": login[1],
                "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
            },
            timeout=240,
        )
        if login == world.editor:
            assert logged.status == 0, logged.logs
            run_id = json.loads(logged.logs.split("LOGGED ", 1)[1].splitlines()[0])["run_id"]
        else:
            assert logged.status != 0 and "401" in logged.logs, logged.logs
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", world.editor[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", world.editor[1])
    logged_run = MlflowClient(tracking_uri=url).get_run(run_id)
    assert logged_run.data.params == {"alpha": "0.5", "client": "2.12.1"}


# --- the route matrix -----------------------------------------------------------------------

MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
# POSTs MLflow allows any logged-in user, which change nothing anyone else owns: the UI's
# usage events, and a call forwarded to the configured AI gateway.
SELF_SERVICE = ("/mlflow/ui-telemetry", "/mlflow/gateway-proxy")


def reads_only(route: Route) -> bool:
    """A POST that only reads (MLflow's searches take their filters in a body)."""
    last = route.template.rstrip("/").rsplit("/", 1)[-1]
    return route.method == "POST" and ("search" in last or last.startswith(("get", "list")))


def manages_access(route: Route) -> bool:
    """User and permission management: the admin's (or a MANAGE holder's) alone."""
    return "/users/" in route.template or "permissions" in route.template


def should_refuse(caller: str, route: Route) -> bool:
    """Whether the caller must get 401/403 (never 2xx) from this route."""
    if is_open(route):
        return False
    if caller == "anonymous":
        return True
    if caller == "admin" or route.template.endswith(LOGGED_IN_SUFFIXES):
        return False
    if manages_access(route):
        return route.method in MUTATING
    if caller == "reader":
        return (
            route.method in MUTATING
            and not reads_only(route)
            and not creates_own(route)
            and not route.template.endswith(SELF_SERVICE)
        )
    return False


def creates_own(route: Route) -> bool:
    """Creating a new experiment or registered model: any logged-in user may (and owns it)."""
    return route.method == "POST" and route.template.endswith(
        ("/experiments/create", "/registered-models/create")
    )


def calls_for(caller: str, route: Route) -> bool:
    """Which calls the matrix makes: the logged-in callers try the routes where a refusal
    is expected of one of them: everything mutating, and access management; the admin's
    answers there show the refusals come from permissions, not from malformed calls."""
    if caller == "anonymous":
        return True
    return should_refuse("reader", route) or manages_access(route)


def test_route_matrix(auth_server: AuthServer, matrix_world: World) -> None:
    routes = enumerate_routes(auth_server.container)
    callers = {
        "anonymous": None,
        "reader": matrix_world.reader,
        "editor": matrix_world.editor,
        "admin": auth_server.admin,  # last: its calls change and delete things
    }
    url = auth_server.uri_from_host
    answers: dict[tuple[str, Route], int | str] = {}
    for caller, auth in callers.items():
        chosen = [route for route in routes if calls_for(caller, route)]
        with requests.Session() as session, ThreadPoolExecutor(max_workers=4) as pool:
            codes = pool.map(lambda r: call(url, r, matrix_world, auth, session), chosen)  # noqa: B023
            answers.update(
                ((caller, route), code) for route, code in zip(chosen, codes, strict=True)
            )
    report = {
        "routes": len(routes),
        "calls": len(answers),
        "answers": {
            caller: dict(Counter(str(code) for (c, _), code in answers.items() if c == caller))
            for caller in callers
        },
    }
    print(json.dumps(report))
    unanswered = [
        f"{caller} {route.method} {route.template} ({route.app}) -> {code}"
        for (caller, route), code in answers.items()
        if not isinstance(code, int)
    ]
    assert not unanswered, "no answer (a hang is not a refusal):\n" + "\n".join(unanswered)
    wrong = [
        f"{caller} {route.method} {route.template} ({route.app}) -> {code}"
        for (caller, route), code in answers.items()
        if should_refuse(caller, route) and 200 <= code < 300
    ]
    assert not wrong, "answered 2xx to a caller who should be refused:\n" + "\n".join(wrong)
    opened = {route.template for route in routes if 200 <= answers["anonymous", route] < 300}
    assert all(is_open(Route("", t, "GET")) for t in opened), opened
    assert answers["anonymous", next(r for r in routes if r.template == "/health")] == 200
    refused_admin = [
        f"{route.method} {route.template} -> {code}"
        for (caller, route), code in answers.items()
        if caller == "admin" and code in (401, 403)
    ]
    assert not refused_admin, refused_admin  # the admin is refused nothing
    assert len(routes) > 100  # the apps were enumerated, not a handful of routes


# --- secrets --------------------------------------------------------------------------------

SECRET_NAME = ("PASSWORD", "SECRET", "TOKEN", "KEY")


def image_texts(tag: str) -> dict[str, str]:
    """What anyone with the image sees: `docker inspect` and `docker history`."""
    texts = {}
    for what, command in (
        ("inspect", ["docker", "image", "inspect", tag]),
        ("history", ["docker", "history", "--no-trunc", "--format", "{{.CreatedBy}}", tag]),
    ):
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        assert done.returncode == 0, f"{' '.join(command)}: {done.stderr}"
        texts[f"{what} {tag}"] = done.stdout
    return texts


def calls_with_every_kind_of_login(auth_server: AuthServer) -> dict[str, str]:
    """What puts passwords on the wire, so the logs scanned hold it whichever test ran
    before: the admin's login, a wrong one, a user created and its password changed. The
    passwords it sent, by name."""
    url = auth_server.uri_from_host + "/api/2.0/mlflow"
    admin = auth_server.admin
    for login, status in ((admin, 200), ((admin[0], f"{admin[1]}-wrong"), 401)):
        answer = requests.get(
            f"{url}/experiments/search", params={"max_results": 1}, auth=login, timeout=30
        )
        assert answer.status_code == status, answer.text
    name, password = f"scanned-{uuid.uuid4().hex[:6]}", f"first-{uuid.uuid4().hex}"
    users = f"{url}/users"
    created = requests.post(
        f"{users}/create", json={"username": name, "password": password}, auth=admin, timeout=30
    )
    assert created.status_code == 200, created.text
    changed = requests.patch(
        f"{users}/update-password",
        json={"username": name, "password": f"{password}-2"},
        auth=admin,
        timeout=30,
    )
    assert changed.status_code == 200, changed.text
    requests.delete(f"{users}/delete", json={"username": name}, auth=admin, timeout=30)
    return {
        "a wrong admin password": f"{admin[1]}-wrong",
        "a new user's password": password,
        "its changed password": f"{password}-2",
    }


def test_no_secret_in_ps_logs_or_images(
    auth_server: AuthServer, world: World, training_image: str, inference_image: str
) -> None:
    """The start-up's command lines, the server's logs after every kind of login (and the
    route matrix's calls, when it ran before), and the three images: no secret anywhere."""
    assert auth_server.startup_command_lines, "no command line was seen during start-up"
    # The migration ran (fresh database) as its own process while the watch looked.
    migration = ("mlflow db upgrade", "mlflow.db")  # as a command or as a Python call
    assert any(m in line for line in auth_server.startup_command_lines for m in migration)
    sent = calls_with_every_kind_of_login(auth_server)
    logs = auth_server.container.get_logs()
    texts = {
        "ps during start-up": "\n".join(sorted(auth_server.startup_command_lines)),
        "container logs": (logs[0] + logs[1]).decode(errors="replace"),
    }
    tags = [auth_server.container.image, training_image, inference_image]
    for tag in tags:
        texts.update(image_texts(tag))
    found = [
        f"{name} in {where}"
        for where, text in texts.items()
        for name, value in {**auth_server.secrets, **sent}.items()
        if value in text
    ]
    client = docker.from_env()
    for tag in tags:
        image_env = client.images.get(tag).attrs["Config"].get("Env") or []
        found += [
            f"{item.split('=', 1)[0]} set in image {tag}"
            for item in image_env
            if any(word in item.split("=", 1)[0] for word in SECRET_NAME) and item.split("=", 1)[1]
        ]
    print(
        json.dumps(
            {
                "command_lines_seen": len(auth_server.startup_command_lines),
                "texts_scanned": sorted(texts),
                "secrets_looked_for": len(auth_server.secrets),
                "secrets_found": len(found),
            }
        )
    )
    assert not found, found
