"""`python -m mlstack.tracking.collation`: what it refuses, and what it keeps.

The conversion of a real upgraded MLflow database is in test_upgrade_from_mlflow2.py;
here, small tables made to hit each failure the command must see before it changes
anything. The server is MariaDB: its utf8mb4_general_nopad_ci tells "lr" from "lr ",
as MySQL 8.4's default utf8mb4_0900_ai_ci does, while utf8mb4_bin pads them equal.
"""

from __future__ import annotations

import pytest
from testcontainers.core.network import Network

from mlstack.tracking.collation.catalog import is_case_insensitive
from mlstack.tracking.collation.cli import database_uris
from mlstack.tracking.config import StoreSettings, load_settings
from support.containers import Exited, run_to_exit
from support.stack import MySQL

COLLATION = ["python", "-m", "mlstack.tracking.collation"]


def test_case_insensitive_collations_are_told_apart() -> None:
    for name in ("utf8mb4_0900_ai_ci", "utf8mb4_general_ci", "utf8mb4_general_nopad_ci"):
        assert is_case_insensitive(name)
    for name in ("utf8mb4_bin", "utf8mb4_0900_as_cs", "utf8mb4_0900_bin", None):
        assert not is_case_insensitive(name)


def test_the_auth_database_is_converted_only_with_auth_on() -> None:
    env = {"DB_HOST": "db", "DB_USER": "u", "DB_PASSWORD": "p"}
    assert [u.rsplit("/", 1)[1] for u in database_uris(load_settings(env, kind=StoreSettings))] == [
        "mlflow"
    ]
    env |= {"MLFLOW_AUTH_ENABLED": "true", "MLFLOW_AUTH_DB_NAME": "auth"}
    assert [u.rsplit("/", 1)[1] for u in database_uris(load_settings(env, kind=StoreSettings))] == [
        "mlflow",
        "auth",
    ]


def collation_command(
    image: str, network: Network, mysql: MySQL, database: str, command: str
) -> Exited:
    uri = f"mysql+pymysql://{mysql.user}:{mysql.password}@{mysql.host}:{mysql.port}/{database}"
    return run_to_exit(
        image,
        [command],
        network=network,
        env={"MLFLOW_BACKEND_STORE_URI": uri},
        entrypoint=COLLATION,
        timeout=120,
    )


def error_lines(finished: Exited) -> list[str]:
    """The command's error lines (stdout and stderr interleave in a container's log)."""
    return [line for line in finished.logs.splitlines() if line.startswith("mlstack-collation:")]


def table_collations(mysql: MySQL, database: str) -> set[str]:
    return set(
        mysql.execute_as_root(
            "SELECT DISTINCT TABLE_COLLATION FROM information_schema.TABLES "
            f"WHERE TABLE_SCHEMA = '{database}'"
        ).split()[1:]
    )


@pytest.mark.docker
def test_convert_refuses_what_would_collide_or_not_fit(
    tracking_server_image: str, legacy_network: Network, legacy_mysql: MySQL
) -> None:
    mysql = legacy_mysql
    mysql.create_database("collide")
    mysql.execute_as_root(
        """
        ALTER DATABASE collide COLLATE utf8mb4_general_nopad_ci; USE collide;
        CREATE TABLE runs (run_uuid VARCHAR(32) PRIMARY KEY);
        CREATE TABLE params (`key` VARCHAR(250) NOT NULL, value VARCHAR(8000),
          run_uuid VARCHAR(32) NOT NULL, PRIMARY KEY (`key`, run_uuid),
          FOREIGN KEY (run_uuid) REFERENCES runs (run_uuid));
        INSERT INTO runs VALUES ('r1'), ('R2');
        INSERT INTO params VALUES ('lr', '1', 'r1'), ('lr ', '2', 'r1'), ('LR', '3', 'r2');
        CREATE TABLE old (a VARCHAR(255), UNIQUE KEY a (a)) CHARACTER SET utf8mb3
          ROW_FORMAT=COMPACT;
        CREATE TABLE wide (a VARCHAR(9000), b VARCHAR(9000)) CHARACTER SET latin1;
        """
    )
    check = collation_command(tracking_server_image, legacy_network, mysql, "collide", "check")
    assert check.status == 1, check.logs
    assert "('lr', 'r1') vs ('lr ', 'r1')" in check.logs or (
        "('lr ', 'r1') vs ('lr', 'r1')" in check.logs
    ), check.logs
    assert "params: 1 rows reference runs (run_uuid) only case-insensitively" in check.logs
    assert "old: column a of index a would take 1020 bytes" in check.logs
    assert "wide: its VARCHAR columns would take 72004 bytes" in check.logs

    convert = collation_command(tracking_server_image, legacy_network, mysql, "collide", "convert")
    assert convert.status == 1
    assert error_lines(convert) == [
        "mlstack-collation: error: refusing to convert database collide: 4 problems listed "
        "above; nothing was changed"
    ]
    assert "utf8mb4_bin" not in table_collations(mysql, "collide")


def foreign_keys(mysql: MySQL, database: str) -> list[str]:
    return mysql.execute_as_root(
        "SELECT CONSTRAINT_NAME, TABLE_NAME, UPDATE_RULE, DELETE_RULE "
        "FROM information_schema.REFERENTIAL_CONSTRAINTS "
        f"WHERE CONSTRAINT_SCHEMA = '{database}' ORDER BY CONSTRAINT_NAME"
    ).splitlines()[1:]


@pytest.mark.docker
def test_convert_keeps_foreign_keys_and_finishes_an_interrupted_run(
    tracking_server_image: str, legacy_network: Network, legacy_mysql: MySQL
) -> None:
    mysql = legacy_mysql
    mysql.create_database("fkeys")
    mysql.execute_as_root(
        """
        USE fkeys;
        CREATE TABLE models (name VARCHAR(256) PRIMARY KEY);
        CREATE TABLE versions (name VARCHAR(256), version INT, PRIMARY KEY (name, version),
          CONSTRAINT fk_versions FOREIGN KEY (name) REFERENCES models (name)
          ON UPDATE CASCADE);
        CREATE TABLE tags (name VARCHAR(256), version INT, `key` VARCHAR(250),
          PRIMARY KEY (name, version, `key`),
          CONSTRAINT fk_tags FOREIGN KEY (name, version) REFERENCES versions (name, version)
          ON DELETE CASCADE);
        INSERT INTO models VALUES ('Model');
        INSERT INTO versions VALUES ('Model', 1);
        INSERT INTO tags VALUES ('Model', 1, 'Stage'), ('Model', 1, 'owner');
        """
    )
    before = foreign_keys(mysql, "fkeys")
    update_rule = next(k for k in before if k.startswith("fk_tags")).split("\t")[2]
    # An earlier conversion that stopped after dropping a key it had saved.
    interrupted = """
        USE fkeys;
        CREATE TABLE mlstack_pending_foreign_keys (table_name VARCHAR(64), name VARCHAR(64),
          add_sql TEXT, PRIMARY KEY (table_name, name));
        INSERT INTO mlstack_pending_foreign_keys VALUES ('tags', 'fk_tags',
          'ALTER TABLE `tags` ADD CONSTRAINT `fk_tags` FOREIGN KEY (`name`, `version`)
           REFERENCES `versions` (`name`, `version`) ON DELETE CASCADE ON UPDATE RULE');
        ALTER TABLE tags DROP FOREIGN KEY fk_tags;
        """
    mysql.execute_as_root(interrupted.replace("UPDATE RULE", f"UPDATE {update_rule}"))
    convert = collation_command(tracking_server_image, legacy_network, mysql, "fkeys", "convert")
    assert convert.status == 0, convert.logs
    assert "added back 2 foreign keys" in convert.logs
    assert table_collations(mysql, "fkeys") == {"utf8mb4_bin"}
    assert foreign_keys(mysql, "fkeys") == before
    assert "mlstack_pending_foreign_keys" not in mysql.execute_as_root("SHOW TABLES FROM fkeys")
    mysql.execute_as_root("INSERT INTO fkeys.tags VALUES ('Model', 1, 'STAGE')")  # case-distinct

    again = collation_command(tracking_server_image, legacy_network, mysql, "fkeys", "check")
    assert again.status == 0 and "every table is utf8mb4 / utf8mb4_bin" in again.logs
