"""Back up and restore the local stack: its databases and its artifact bucket.

    mlstack --env-file .env local backup --into backups
    mlstack --env-file .env local restore backups/20260101-120000 [--yes]

A backup is one dated folder: `manifest.json`, `mysql/<database>.sql` (mysqldump of
the tracking database and, when it exists, the auth database) and `bucket/` (every
object of the artifact bucket). MySQL's port is not published on the host, so
everything runs inside the stack's own containers: mysqldump / mysql in the mysql
container, `mc` in the minio container, each with the credentials that container
already holds, so no password passes through this script.

The backup runs beside a live server: mysqldump --single-transaction reads one
consistent snapshot, and the bucket is copied after it, so it holds every artifact
the dump refers to. A restore REPLACES the databases and the bucket's objects: it
says what it will replace and refuses without --yes (`make local-restore CONFIRM=yes`);
it stops the tracking server meanwhile and starts it again afterwards.

Prints what it does; on failure one line "mlstack: error: ..." and exit 1. The stack's
names (compose project, DB_NAME, MLFLOW_AUTH_DB_NAME, ARTIFACTS_DESTINATION) come from
`LocalSettings`: the environment, then the stack's .env.
"""

from __future__ import annotations

import json
import secrets
import tarfile
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import docker
from docker.models.containers import Container

from mlstack.cli import docker_engine
from mlstack.cli.errors import CliError
from mlstack.cli.settings import LocalSettings
from mlstack.core.waiting import TimedOut, poll

MANIFEST = "manifest.json"
HEALTH_TIMEOUT_S = 180
DUMP_OPTIONS = (
    "--single-transaction --routines --triggers --hex-blob --no-tablespaces "
    "--default-character-set=utf8mb4"
)


class BackupError(CliError):
    """Something the user must fix; its message is the one line they see."""


def require_env_file(path: Path) -> None:
    """The stack's .env must exist: its passwords are those the stack was made with."""
    if not path.exists():
        raise BackupError(f"{path} is missing: start the stack with `make local-up` first")


def bucket_of(destination: str) -> str:
    """The bucket of ARTIFACTS_DESTINATION (s3://bucket[/prefix])."""
    return (destination or "s3://mlflow/artifacts").removeprefix("s3://").split("/", 1)[0]


def service(client: docker.DockerClient, project: str, name: str) -> Container:
    """The running container of one compose service of the project."""
    found = client.containers.list(
        all=True,
        filters={
            "label": [f"com.docker.compose.project={project}", f"com.docker.compose.service={name}"]
        },
    )
    if not found:
        raise BackupError(
            f"stack {project!r} has no {name} container: start it with `make local-up` first"
        )
    if found[0].status != "running":
        raise BackupError(
            f"{name} of stack {project!r} is {found[0].status}: `make local-up` first"
        )
    return found[0]


def run_in(container: Container, script: str, into: Path | None = None) -> str:
    """Run a shell script in the container; stream stdout into a file or return it."""
    api = container.client.api
    exec_id = api.exec_create(container.id, ["sh", "-c", script], stdout=True, stderr=True)["Id"]
    errors, output = bytearray(), bytearray()
    sink = into.open("wb") if into else None
    try:
        for out, err in api.exec_start(exec_id, stream=True, demux=True):
            if out:
                sink.write(out) if sink else output.extend(out)
            if err:
                errors.extend(err)
    finally:
        if sink:
            sink.close()
    code = api.exec_inspect(exec_id)["ExitCode"]
    if code != 0:
        last = (errors.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        raise BackupError(f"{container.name}: `{script.split()[0]} ...` failed ({code}): {last}")
    return output.decode(errors="replace")


def mysql_sql(container: Container, sql: str, database: str = "") -> str:
    """SQL as root inside the mysql container (the root password is its own environment)."""
    return run_in(
        container,
        f'MYSQL_PWD="$MYSQL_ROOT_PASSWORD" mysql -uroot --batch --skip-column-names '
        f'-e "{sql}" {database}',
    )


def databases_present(mysql: Container, names: Iterable[str]) -> dict[str, str]:
    """Of the names, the databases that exist, with their default collation."""
    rows = mysql_sql(
        mysql, "SELECT SCHEMA_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA"
    )
    existing = dict(line.split("\t") for line in rows.splitlines() if "\t" in line)
    return {name: existing[name] for name in names if name in existing}


def mc(alias_script: str) -> str:
    """A shell prefix that points `mc` at this MinIO with its own root credentials.

    Through mc's environment (MC_HOST_stack), not `mc alias set`'s arguments: `ps` in the
    container would show those.
    """
    return (
        'export MC_CONFIG_DIR="$(mktemp -d)"; trap \'rm -rf "$MC_CONFIG_DIR"\' EXIT; '
        'export MC_HOST_stack="http://$MINIO_ROOT_USER:$MINIO_ROOT_PASSWORD@127.0.0.1:9000"; '
        f"{alias_script}"
    )


def backup(settings: LocalSettings, root: Path) -> Path:
    """Dump the databases, then copy the bucket, into root/YYYYmmdd-HHMMSS/."""
    project = settings.compose_project
    client = docker_engine.client()
    mysql, minio = service(client, project, "mysql"), service(client, project, "minio")
    target = root / time.strftime("%Y%m%d-%H%M%S")
    (target / "mysql").mkdir(parents=True)
    names = [settings.db_name, settings.mlflow_auth_db_name]
    databases = databases_present(mysql, names)
    for name in databases:
        dump = target / "mysql" / f"{name}.sql"
        run_in(
            mysql,
            f'MYSQL_PWD="$MYSQL_ROOT_PASSWORD" mysqldump -uroot {DUMP_OPTIONS} {name}',
            into=dump,
        )
        print(f"dumped database {name}: {dump} ({dump.stat().st_size} bytes)")
    bucket = bucket_of(settings.artifacts_destination)
    objects, size = copy_bucket_out(minio, bucket, target / "bucket")
    print(f"copied bucket {bucket}: {objects} objects, {size} bytes")
    manifest = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "project": project,
        "databases": databases,
        "bucket": bucket,
        "objects": objects,
        "bytes": size,
    }
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"backup complete: {target}")
    return target


def copy_bucket_out(minio: Container, bucket: str, into: Path) -> tuple[int, int]:
    """Mirror the bucket to a scratch folder in the container, then stream it out as tar."""
    scratch = f"/tmp/mlstack-backup-{secrets.token_hex(4)}"  # noqa: S108 - inside the container
    try:
        run_in(minio, mc(f"mc mirror --quiet stack/{bucket} {scratch}/{bucket} >/dev/null"))
        run_in(minio, f"mkdir -p {scratch}/{bucket}")  # an empty bucket mirrors nothing
        stream, _ = minio.get_archive(f"{scratch}/{bucket}")
        with tempfile.TemporaryFile() as archive:
            for chunk in stream:
                archive.write(chunk)
            archive.seek(0)
            with tarfile.open(fileobj=archive) as tar:
                into.mkdir(parents=True)
                tar.extractall(into, filter="data")
    finally:
        run_in(minio, f"rm -rf {scratch}")
    # get_archive wraps the folder in a directory named after it.
    (into / bucket).rename(into.with_name("bucket.tmp"))
    into.rmdir()
    into.with_name("bucket.tmp").rename(into)
    files = [p for p in into.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def restore(settings: LocalSettings, source: Path, confirmed: bool, env_file: Path) -> None:
    """Replace the stack's databases and bucket objects with the backup's (the stack env_file
    started, never another's)."""
    from mlstack.cli.local.stack import require_own

    manifest_path = source / MANIFEST
    if not manifest_path.exists():
        raise BackupError(f"{source} holds no {MANIFEST}: give a folder `make local-backup` wrote")
    manifest = json.loads(manifest_path.read_text())
    require_own(settings, env_file, "restored")
    project = settings.compose_project
    client = docker_engine.client()
    mysql, minio = service(client, project, "mysql"), service(client, project, "minio")
    bucket = bucket_of(settings.artifacts_destination)
    print(f"restore {source} into stack {project!r}:")
    for name in manifest["databases"]:
        print(f"  replace database {name} (dropped and recreated from mysql/{name}.sql)")
    print(f"  replace every object of bucket {bucket} with the backup's {manifest['objects']}")
    if not confirmed:
        raise BackupError(
            "this overwrites the stack's data: run again with CONFIRM=yes (or --yes) to restore"
        )
    server = stopped_tracking_server(client, project)
    for name, collation in manifest["databases"].items():
        mysql_sql(
            mysql,
            f"DROP DATABASE IF EXISTS \\`{name}\\`; "
            f"CREATE DATABASE \\`{name}\\` CHARACTER SET utf8mb4 COLLATE {collation};",
        )
        dump = {f"mlstack-restore-{name}.sql": source / "mysql" / f"{name}.sql"}
        put_files(mysql, "/tmp", dump)  # noqa: S108 - inside the container
        run_in(
            mysql,
            f'MYSQL_PWD="$MYSQL_ROOT_PASSWORD" mysql -uroot --default-character-set=utf8mb4 '
            f"{name} < /tmp/mlstack-restore-{name}.sql; status=$?; "
            f"rm -f /tmp/mlstack-restore-{name}.sql; exit $status",
        )
        print(f"restored database {name}")
    scratch = f"/tmp/mlstack-restore-{secrets.token_hex(4)}"  # noqa: S108 - inside the container
    try:
        files = {
            str(p.relative_to(source)): p for p in (source / "bucket").rglob("*") if p.is_file()
        }
        run_in(minio, f"mkdir -p {scratch}/bucket")
        put_files(minio, scratch, files)
        run_in(
            minio,
            mc(
                f"mc mirror --quiet --overwrite --remove {scratch}/bucket stack/{bucket} >/dev/null"
            ),
        )
    finally:
        run_in(minio, f"rm -rf {scratch}")
    print(f"restored bucket {bucket}: {len(files)} objects")
    if server is not None:
        start_and_wait(server)
        reset_admin_password(server)
    print("restore complete")


def reset_admin_password(server: Container) -> None:
    """With access control on, the restored auth database holds the backed-up stack's admin
    password: set the admin's password to this stack's (.env), so its clients log in."""
    env = dict(item.partition("=")[::2] for item in server.attrs["Config"]["Env"])
    if env.get("MLFLOW_AUTH_ENABLED", "").lower() != "true":
        return
    run_in(server, "python -m mlstack.tracking.auth reset-admin-password")
    print("the admin's password is this stack's again (MLFLOW_AUTH_ADMIN_PASSWORD of .env)")


def put_files(container: Container, directory: str, files: dict[str, Path]) -> None:
    """Copy host files into the container under directory, by their relative names."""
    with tempfile.TemporaryFile() as archive:
        with tarfile.open(fileobj=archive, mode="w") as tar:
            for name, path in files.items():
                tar.add(path, arcname=name)
        archive.seek(0)
        if not container.put_archive(directory, archive):
            raise BackupError(f"could not copy files into {container.name}:{directory}")


def stopped_tracking_server(client: docker.DockerClient, project: str) -> Container | None:
    """Stop the stack's tracking server, if it runs, so nothing writes during the restore."""
    found = client.containers.list(
        filters={
            "label": [
                f"com.docker.compose.project={project}",
                "com.docker.compose.service=tracking-server",
            ]
        }
    )
    if not found:
        return None
    print("stopping the tracking server for the restore")
    found[0].stop(timeout=30)
    return found[0]


def start_and_wait(server: Container) -> None:
    """Start the tracking server again; return once Docker reports it healthy."""
    print("starting the tracking server (it migrates the restored schema if it must)")
    server.start()

    def healthy() -> bool | None:
        server.reload()
        if server.attrs["State"].get("Health", {}).get("Status") == "healthy":
            return True
        return False if server.status == "exited" else None

    try:
        if poll(healthy, timeout=HEALTH_TIMEOUT_S, interval=2):
            return
    except TimedOut:
        pass
    logs = server.logs(tail=5).decode(errors="replace").strip().splitlines()
    raise BackupError(
        f"the tracking server did not become healthy after the restore: {logs[-1] if logs else ''}"
    )
