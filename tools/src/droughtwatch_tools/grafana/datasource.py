"""The PostgreSQL datasource every panel and alert reads: its identity, the variables it takes its
connection from, and its provisioning document."""

from __future__ import annotations

from typing import Any

DATASOURCE_UID = "droughtwatch-pg"
DATASOURCE_TYPE = "grafana-postgresql-datasource"
DATASOURCE_REF = {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID}

# The variables the datasource reads; `droughtwatch grafana` sets them in the compose
# subprocess's environment only (never in a file).
ENV_HOST = "DROUGHTWATCH_DB_HOST"
ENV_PORT = "DROUGHTWATCH_DB_PORT"
ENV_NAME = "DROUGHTWATCH_DB_NAME"
ENV_USER = "DROUGHTWATCH_DB_USER"
ENV_PASSWORD = "DROUGHTWATCH_DB_PASSWORD"
ENV_SSLMODE = "DROUGHTWATCH_DB_SSLMODE"
DATASOURCE_ENV = (ENV_HOST, ENV_PORT, ENV_NAME, ENV_USER, ENV_PASSWORD, ENV_SSLMODE)


def build_datasource() -> dict[str, Any]:
    """The PostgreSQL datasource; every connection detail comes from the container's env."""
    return {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "droughtwatch",
                "uid": DATASOURCE_UID,
                "type": DATASOURCE_TYPE,
                "access": "proxy",
                "url": f"${{{ENV_HOST}}}:${{{ENV_PORT}}}",
                "user": f"${{{ENV_USER}}}",
                "isDefault": True,
                "editable": False,
                "jsonData": {
                    "database": f"${{{ENV_NAME}}}",
                    "sslmode": f"${{{ENV_SSLMODE}}}",
                    "postgresVersion": 1500,
                    "timescaledb": False,
                    "maxOpenConns": 5,
                    "connMaxLifetime": 14400,
                },
                "secureJsonData": {"password": f"${{{ENV_PASSWORD}}}"},
            }
        ],
    }
