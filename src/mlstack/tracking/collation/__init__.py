"""MLflow's tables in a case-sensitive collation: the start-up warning, `check` and `convert`.

MLflow's names are case-sensitive (metric "Loss" and "loss" are two metrics), but
its tables take the database's default collation, and MySQL 8.4 creates databases
case-insensitive (utf8mb4_0900_ai_ci): there, log_metric("loss") after
log_metric("Loss") fails with a duplicate key. A database made that way (an
upgraded MLflow 2.x one, say) is converted, table by table, to utf8mb4_bin, the
case-sensitive collation both MySQL 8.4 / RDS and MariaDB have:

    python -m mlstack.tracking.collation check|convert

It reads the server's settings (MLFLOW_BACKEND_STORE_URI or DB_*, and the auth
database when MLFLOW_AUTH_ENABLED is true), prints what it finds or does, and on
failure one line "mlstack-collation: error: ..." with exit status 1.

The modules, in the order a conversion uses them:
- catalog: reading the tables, columns, indexes and foreign keys from information_schema;
- blockers: what would stop a conversion (collisions, sizes, case-only foreign-key matches);
- report: what `check` finds in one database, and its printing;
- conversion: the conversion itself, foreign keys dropped, saved and added back;
- startup_warning: the tracking server's one warning at start-up;
- cli: `check` and `convert` on the server's databases (run by __main__).

A running tracking server writing meanwhile would be blocked table by table (ALTER
TABLE copies each table): the conversion refuses while other sessions use the
database, and holds the start-up's schema lock (database.schema_lock), so no replica
migrates at the same time.
"""
