"""MLflow's basic-auth app: its configuration file and its one-time bootstrap.

    python -m mlstack.tracking.auth reset-admin-password

sets the admin's password (and admin flag) in the auth database to the environment's
MLFLOW_AUTH_ADMIN_PASSWORD: after a restore brought back an auth database made with
another password, say. MLflow's bootstrap only creates a missing admin.
"""

from __future__ import annotations

import configparser
import os
import sys
import tempfile

from mlstack.core.errors import StartupError
from mlstack.tracking.config import AuthSettings, load_settings


def write_auth_config(auth: AuthSettings) -> str:
    """Write basic_auth.ini (it holds the auth database URI) readable only by this user.

    The file lives in a private temporary directory of the running container,
    never in the image. The admin's credentials travel as MLFLOW_AUTH_ADMIN_*.
    """
    config = configparser.ConfigParser(interpolation=None)
    config["mlflow"] = {
        "default_permission": auth.default_permission,
        "database_uri": auth.database_uri,
        "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
    }
    directory = tempfile.mkdtemp(prefix="mlflow-auth-")
    path = os.path.join(directory, "basic_auth.ini")
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        config.write(handle)
    return path


def create_initial_auth_tables(database_uri: str) -> None:
    """On an empty auth database, create the tables of MLflow's first auth migration.

    That migration names two foreign keys "fk_user_id", which MySQL refuses
    (constraint names are unique per database: mlflow/mlflow#9642, #10964).
    The same tables with distinct names are what MLflow treats as a legacy
    auth database: it stamps the first revision and applies all later ones.
    """
    import sqlalchemy as sa

    engine = sa.create_engine(database_uri)
    try:
        if sa.inspect(engine).has_table("users"):
            return
        metadata = sa.MetaData()
        sa.Table(
            "users",
            metadata,
            sa.Column("id", sa.Integer(), primary_key=True),
            sa.Column("username", sa.String(255), unique=True),
            sa.Column("password_hash", sa.String(255)),
            sa.Column("is_admin", sa.Boolean()),
        )
        for table, key, unique_name, foreign_key_name in (
            ("experiment_permissions", "experiment_id", "unique_experiment_user", "fk_user_id"),
            ("registered_model_permissions", "name", "unique_name_user", "fk_rm_user_id"),
        ):
            sa.Table(
                table,
                metadata,
                sa.Column("id", sa.Integer(), primary_key=True),
                sa.Column(key, sa.String(255), nullable=False),
                sa.Column("user_id", sa.Integer(), nullable=False),
                sa.Column("permission", sa.String(255)),
                sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=foreign_key_name),
                sa.UniqueConstraint(key, "user_id", name=unique_name),
            )
        metadata.create_all(engine)
    finally:
        engine.dispose()


def bootstrap_auth() -> None:
    """Migrate the auth database and create the admin user, once, before any worker starts.

    MLflow then skips this in each worker (_MLFLOW_AUTH_ADMIN_BOOTSTRAPPED), so
    several workers never race on the auth database's first initialisation.
    """
    from mlflow.server.auth import bootstrap_admin_user

    bootstrap_admin_user()


def reset_admin_password(auth: AuthSettings) -> None:
    """Give the configured admin the configured password and the admin flag."""
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore()
    store.init_db(auth.database_uri)
    try:
        if store.has_user(auth.admin_username):
            store.update_user(auth.admin_username, password=auth.admin_password, is_admin=True)
        else:
            store.create_user(auth.admin_username, auth.admin_password, is_admin=True)
    finally:
        store.engine.dispose()


def main(argv: list[str] | None = None) -> None:
    """`reset-admin-password`; one line "mlstack-auth: error: ..." and exit 1 on failure."""
    args = sys.argv[1:] if argv is None else argv
    if args != ["reset-admin-password"]:
        sys.exit("usage: python -m mlstack.tracking.auth reset-admin-password")
    try:
        settings = load_settings()
        if settings.auth is None:
            raise StartupError("MLFLOW_AUTH_ENABLED is not true: there is no admin to reset")
        reset_admin_password(settings.auth)
    except StartupError as error:
        sys.exit(f"mlstack-auth: error: {error}")
    print(f"admin {settings.auth.admin_username!r} has the password of MLFLOW_AUTH_ADMIN_PASSWORD")


if __name__ == "__main__":
    main()
