"""Tracking server with access control against stock `mlflow server`, side by side in one run.

Needs the local stack up with access control on, its default (`make local-up`). Starts,
from our image and on the stack's network, against the stack's MySQL and MinIO:

- stock `mlflow server` with its defaults (uvicorn, 4 workers), no access control;
- stock `mlflow server --app-name basic-auth` (MLflow's own access control), on the
  stack's auth database: the same users, the same stored password hashes;
- with `--before-image TAG`, a second mlstack server from that image (e.g. a build of
  an older commit), with the stack's own configuration;

and measures, for each server, with the same clients:

0. (ours only) one password check inside a worker: MLflow's own (scrypt) and ours,
   remembered (the user's row read again, no hash);
1. login cost: seconds per authenticated request (GET experiments/search, one client,
   in sequence; the first request apart, the median of the rest);
2. throughput: runs/s of `--threads` clients for `--seconds`, a run being create_run +
   log_batch(100 metrics, 1 param) + set_terminated, logged as the admin and as a user
   who is not one (its own experiment), alternating rounds so a noisy neighbour weighs
   on every server alike; stock without auth is the same for either identity;
3. guessing: wrong passwords for one user per second, from 1 and from `--guessers`
   clients (every answer must be 401).

A user and a guessing target are created for the run and deleted after it; every
container started here is removed. Prints a table.
"""

from __future__ import annotations

import argparse
import configparser
import io
import json
import os
import secrets
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, redirect_stdout
from dataclasses import dataclass

import docker
import requests
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.server import get_app_client

from mlstack import ROOT, version
from mlstack.cli.settings import LocalSettings, export_for_libraries, load
from mlstack.core.ports import free_port
from mlstack.core.waiting import TimedOut, until_ok

SEARCH = "/api/2.0/mlflow/experiments/search?max_results=1"
STOCK = "stock mlflow server"
STOCK_AUTH = "stock basic-auth"
OURS = "mlstack"
BEFORE = "mlstack --before-image"
AUTH_CONFIG = "/home/mlflow/basic_auth.ini"  # in the stock basic-auth container (its home)
# Run inside the stack's server (`docker exec`: the container's settings): MLflow's auth
# store and ours on the auth database, the admin's login.
CHECK_PROGRAM = r"""
import json, statistics, time
from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore
from mlstack.tracking.config import load_settings
from mlstack.tracking.credentials import RememberingStore
auth = load_settings().auth
mlflows, ours = SqlAlchemyStore(), RememberingStore()
mlflows.init_db(auth.database_uri)
ours.init_db(auth.database_uri)
login = (auth.admin_username, auth.admin_password)
def seconds(check, count):
    times = []
    for _ in range(count):
        started = time.perf_counter()
        assert check(*login)
        times.append(time.perf_counter() - started)
    return statistics.median(times)
ours.authenticate_user(*login)
print(json.dumps({"mlflow": seconds(mlflows.authenticate_user, 10),
                  "remembered": seconds(ours.authenticate_user, 500)}))
"""


@dataclass(frozen=True)
class Login:
    """Who the clients log in as."""

    name: str  # "admin" or "user", for the table
    username: str
    password: str


def fail(message: str) -> SystemExit:
    return SystemExit(f"tracking_bench: error: {message}")


def wait_healthy(url: str, timeout: float = 180) -> None:
    """Until url/health answers."""
    try:
        until_ok(f"{url}/health", timeout, 1)
    except TimedOut:
        raise fail(f"{url} did not become healthy in {timeout:.0f} s") from None


def backend_uri(settings: LocalSettings, database: str) -> str:
    password = settings.require("db_password")
    return f"mysql+pymysql://{settings.db_user}:{password}@mysql:3306/{database}"


def stock_command(settings: LocalSettings, basic_auth: bool) -> list[str]:
    """`mlflow server` with its defaults, our database and bucket; basic-auth when asked."""
    command = [
        "mlflow",
        "server",
        "--host",
        "0.0.0.0",
        "--port",
        "5000",
        "--backend-store-uri",
        backend_uri(settings, settings.db_name),
        "--artifacts-destination",
        settings.artifacts_destination,
        "--serve-artifacts",
    ]
    return command + (["--app-name", "basic-auth"] if basic_auth else [])


def stock_auth_config(settings: LocalSettings) -> str:
    """MLflow's basic_auth.ini for the stack's auth database, as MLflow documents it."""
    config = configparser.ConfigParser(interpolation=None)
    config["mlflow"] = {
        "default_permission": "NO_PERMISSIONS",
        "database_uri": backend_uri(settings, settings.mlflow_auth_db_name),
        "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
    }
    text = io.StringIO()
    config.write(text)
    return text.getvalue()


def start_stock(settings: LocalSettings, port: int, basic_auth: bool):
    """Stock `mlflow server` from our image (same mlflow, same drivers) on the stack's network.

    The auth configuration (it holds the database password) travels as a variable and is
    written to a file inside the container, readable by its user only.
    """
    environment = {
        "AWS_ACCESS_KEY_ID": settings.minio_mlflow_user,
        "AWS_SECRET_ACCESS_KEY": settings.require("minio_mlflow_password"),
        "MLFLOW_S3_ENDPOINT_URL": "http://minio:9000",
    }
    command = stock_command(settings, basic_auth)
    if basic_auth:
        environment.update(
            BENCH_AUTH_CONFIG=stock_auth_config(settings),
            MLFLOW_AUTH_CONFIG_PATH=AUTH_CONFIG,
            MLFLOW_AUTH_ADMIN_USERNAME=settings.mlflow_auth_admin_username,
            MLFLOW_AUTH_ADMIN_PASSWORD=settings.require("mlflow_auth_admin_password"),
            MLFLOW_FLASK_SERVER_SECRET_KEY=secrets.token_urlsafe(24),
        )
        script = f'umask 077; printf %s "$BENCH_AUTH_CONFIG" > {AUTH_CONFIG}; exec "$@"'
        command = ["sh", "-c", script, "sh", *command]
    return docker.from_env().containers.run(
        f"mlstack/tracking-server:{version()}",
        entrypoint=[command[0]],
        command=command[1:],
        environment=environment,
        network=settings.network,
        ports={"5000/tcp": ("127.0.0.1", port)},
        detach=True,
    )


def stack_server(settings: LocalSettings):
    """The stack's tracking-server container."""
    labels = [
        f"com.docker.compose.project={settings.compose_project}",
        "com.docker.compose.service=tracking-server",
    ]
    found = docker.from_env().containers.list(filters={"label": labels})
    if not found:
        raise fail("the stack's tracking server is not running: make local-up")
    return found[0]


def password_check_seconds(settings: LocalSettings) -> dict[str, float]:
    """Median seconds of one password check in the stack's server: MLflow's, remembered."""
    code, output = stack_server(settings).exec_run(["python", "-c", CHECK_PROGRAM])
    text = output.decode(errors="replace")
    if code != 0:
        raise fail(f"the password-check probe failed: {text.strip().splitlines()[-1]}")
    return json.loads(text.strip().splitlines()[-1])


def start_copy_of_ours(settings: LocalSettings, image: str, port: int):
    """A second mlstack server from `image`, configured exactly as the stack's own."""
    client = docker.from_env()
    environment = stack_server(settings).attrs["Config"]["Env"]
    kept = [item for item in environment if not item.startswith(("PATH=", "PYTHONPATH="))]
    return client.containers.run(
        image,
        environment=kept,
        network=settings.network,
        ports={"5000/tcp": ("127.0.0.1", port)},
        detach=True,
    )


@contextmanager
def started(start: Callable[[int], object]) -> Iterator[str]:
    """A server container on a free port of 127.0.0.1, removed afterwards; yields its URL."""
    port = free_port()
    container = start(port)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url)
        yield url
    finally:
        container.remove(force=True)


def log_in_as(login: Login) -> None:
    """MLflow's clients made from now on send this login (they read it from the environment)."""
    export_for_libraries(
        {"MLFLOW_TRACKING_USERNAME": login.username, "MLFLOW_TRACKING_PASSWORD": login.password}
    )


def seconds_per_request(url: str, login: Login, count: int = 30) -> tuple[float, float]:
    """(first request, median of the next count) seconds of an authenticated GET."""
    times = []
    with requests.Session() as session:
        session.auth = (login.username, login.password)
        for _ in range(count + 1):
            started_at = time.perf_counter()
            answer = session.get(url + SEARCH, timeout=60)
            times.append(time.perf_counter() - started_at)
            if answer.status_code != 200:
                raise fail(f"{url} answered {answer.status_code} to {login.name}'s login")
    return times[0], statistics.median(times[1:])


def runs_per_second(url: str, threads: int, seconds: float, experiment_id: str) -> float:
    """Runs per second that `threads` clients achieve against url for `seconds`.

    MLflow's client prints a "View run" line at each set_terminated: kept off the table.
    """
    metrics = [Metric(f"m{i}", float(i), 0, 0) for i in range(100)]
    done = [0] * threads
    stop_at = time.monotonic() + seconds

    def worker(index: int) -> None:
        own = MlflowClient(tracking_uri=url)
        while time.monotonic() < stop_at:
            run = own.create_run(experiment_id)
            now = int(time.time() * 1000)
            own.log_batch(
                run.info.run_id,
                metrics=[Metric(m.key, m.value, now, 0) for m in metrics],
                params=[Param("p", "v")],
            )
            own.set_terminated(run.info.run_id)
            done[index] += 1

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    with redirect_stdout(io.StringIO()):
        started_at = time.monotonic()
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
    return sum(done) / (time.monotonic() - started_at)


def guesses_per_second(url: str, username: str, clients: int, seconds: float) -> float:
    """Wrong passwords tried per second by `clients` clients; each must be refused (401)."""
    counts = [0] * clients
    wrong: list[int] = []
    stop_at = time.monotonic() + seconds

    def guesser(index: int) -> None:
        with requests.Session() as session:
            while time.monotonic() < stop_at:
                guess = f"guess-{index}-{counts[index]}"
                status = session.get(url + SEARCH, auth=(username, guess), timeout=60).status_code
                if status != 401:
                    wrong.append(status)
                counts[index] += 1

    pool = [threading.Thread(target=guesser, args=(i,)) for i in range(clients)]
    started_at = time.monotonic()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    if wrong:
        raise fail(f"{url} answered {sorted(set(wrong))} to wrong passwords, not 401")
    return sum(counts) / (time.monotonic() - started_at)


@contextmanager
def bench_users(url: str, admin: Login) -> Iterator[tuple[Login, str]]:
    """A user who is not an admin, and a guessing target; deleted afterwards."""
    suffix = secrets.token_hex(3)
    user = Login("user", f"bench-user-{suffix}", secrets.token_urlsafe(18))
    target = f"bench-target-{suffix}"
    log_in_as(admin)
    users = get_app_client("basic-auth", tracking_uri=url)
    users.create_user(user.username, user.password)
    users.create_user(target, secrets.token_urlsafe(18))
    try:
        yield user, target
    finally:
        log_in_as(admin)
        users.delete_user(user.username)
        users.delete_user(target)


def load_average() -> str:
    with open("/proc/loadavg") as handle:
        return " ".join(handle.read().split()[:3])


def report(title: str, rows: dict[str, str]) -> None:
    print(f"\n{title}")
    for name, text in rows.items():
        print(f"  {name:34s} {text}")


def throughput(
    servers: dict[str, str], logins: list[Login], args: argparse.Namespace
) -> dict[tuple[str, Login], list[float]]:
    """Alternating rounds of every (server, login); stock without auth once a round."""
    experiments: dict[tuple[str, Login], str] = {}
    for name, url in servers.items():
        for login in logins if name != STOCK else logins[:1]:
            log_in_as(login)  # each login logs to an experiment of its own (the user's: MANAGE)
            client = MlflowClient(tracking_uri=url)
            experiment = f"bench-{login.name}-{time.time_ns()}"
            experiments[name, login] = client.create_experiment(experiment)
            runs_per_second(url, args.threads, 3, experiments[name, login])  # warm-up
    rounds: dict[tuple[str, Login], list[float]] = {key: [] for key in experiments}
    for _ in range(args.rounds):
        for (name, login), experiment_id in experiments.items():
            log_in_as(login)
            rounds[name, login].append(
                runs_per_second(servers[name], args.threads, args.seconds, experiment_id)
            )
    return rounds


def milliseconds(url: str, login: Login) -> str:
    first, then = seconds_per_request(url, login)
    return f"first {first * 1000:7.1f} ms, then median {then * 1000:7.1f} ms"


def main() -> None:
    """Measure every server and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per server")
    parser.add_argument("--guessers", type=int, default=16)
    parser.add_argument("--guess-seconds", type=float, default=10)
    parser.add_argument("--before-image", help="also measure mlstack from this image")
    args = parser.parse_args()
    settings = load(LocalSettings, ROOT / ".env")
    if not settings.mlflow_auth_enabled:
        raise fail("the stack runs without access control: set MLFLOW_AUTH_ENABLED=true")
    admin = Login(
        "admin",
        settings.mlflow_auth_admin_username,
        settings.require("mlflow_auth_admin_password"),
    )
    export_for_libraries({"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"})
    ours = settings.tracking_uri
    wait_healthy(ours)
    print(f"load average at start: {load_average()} ({os.cpu_count()} CPUs)")
    check = password_check_seconds(settings)
    report(
        "one password check in a worker of ours (median)",
        {
            "MLflow's (scrypt)": f"{check['mlflow'] * 1000:7.1f} ms",
            "remembered (its row read again)": f"{check['remembered'] * 1000:7.2f} ms",
        },
    )
    with ExitStack() as stack:
        servers = {
            STOCK: stack.enter_context(started(lambda p: start_stock(settings, p, False))),
            STOCK_AUTH: stack.enter_context(started(lambda p: start_stock(settings, p, True))),
            OURS: ours,
        }
        if args.before_image:
            before = stack.enter_context(
                started(lambda p: start_copy_of_ours(settings, args.before_image, p))
            )
            servers[BEFORE] = before
        user, target = stack.enter_context(bench_users(ours, admin))
        logins = [admin, user]
        with_auth = {name: url for name, url in servers.items() if name != STOCK}
        latency = {name: milliseconds(url, user) for name, url in servers.items()}
        report("an authenticated GET experiments/search (the user, one client)", latency)
        rounds = throughput(servers, logins, args)
        medians = {key: statistics.median(values) for key, values in rounds.items()}
        rows = {
            f"{name}" + (f" ({login.name})" if name != STOCK else ""): f"{value:6.1f} runs/s "
            f"(rounds: {', '.join(f'{v:.1f}' for v in rounds[name, login])})"
            for (name, login), value in medians.items()
        }
        for login in logins:
            ratio_auth = medians[OURS, login] / medians[STOCK_AUTH, login]
            ratio_plain = medians[OURS, login] / medians[STOCK, admin]
            rows[f"ours / stock basic-auth ({login.name})"] = f"{ratio_auth:6.2f}"
            rows[f"ours / stock without auth ({login.name})"] = f"{ratio_plain:6.2f}"
        report(f"throughput, {args.threads} threads, {args.seconds:.0f} s rounds", rows)
        guessing = {}
        for name, url in with_auth.items():
            one = guesses_per_second(url, target, 1, args.guess_seconds)
            many = guesses_per_second(url, target, args.guessers, args.guess_seconds)
            guessing[name] = f"{one:6.2f} guesses/s (1 client), {many:6.2f} ({args.guessers})"
        report("wrong passwords for one user, all refused", guessing)
    print(f"\nload average at end: {load_average()}")


if __name__ == "__main__":
    main()
