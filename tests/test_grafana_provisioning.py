"""The committed Grafana files: generated from droughtwatch_tools.grafana, parseable, valid
for the dashboard schema, and in agreement (datasource uid, threshold, variables, paths)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from droughtwatch_contract.settings import ObserveSettings
from droughtwatch_tools import grafana

GRAFANA_DIR = Path(__file__).resolve().parents[1] / "grafana"
DASHBOARD_PATH = GRAFANA_DIR / "dashboards" / grafana.DASHBOARD_FILE
SCHEMA_PATH = GRAFANA_DIR / "schema" / "dashboard.schema.json"


def _load_yaml(relative: str) -> dict[str, Any]:
    return yaml.safe_load((GRAFANA_DIR / relative).read_text())


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD_PATH.read_text())


@pytest.fixture(scope="module")
def datasource() -> dict[str, Any]:
    (only,) = _load_yaml("provisioning/datasources/droughtwatch.yaml")["datasources"]
    return only


@pytest.fixture(scope="module")
def rules() -> dict[str, dict[str, Any]]:
    (group,) = _load_yaml("provisioning/alerting/droughtwatch.yaml")["groups"]
    return {rule["uid"]: rule for rule in group["rules"]}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((GRAFANA_DIR / "docker-compose.yaml").read_text())


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _panel(dashboard: dict[str, Any], title: str) -> dict[str, Any]:
    (found,) = [p for p in dashboard["panels"] if p["title"] == title]
    return found


def test_committed_files_equal_the_generated_ones() -> None:
    for relative, content in grafana.rendered_files().items():
        path = GRAFANA_DIR / relative
        assert path.read_text() == content, (
            f"{path} is stale: run `uv run python -m droughtwatch_tools.grafana grafana`"
        )


def test_every_panel_and_the_alerts_use_the_provisioned_datasource(
    dashboard: dict[str, Any], datasource: dict[str, Any], rules: dict[str, dict[str, Any]]
) -> None:
    uid, kind = datasource["uid"], datasource["type"]
    assert kind == "grafana-postgresql-datasource"
    assert dashboard["panels"]
    for panel in dashboard["panels"]:
        assert panel["datasource"] == {"type": kind, "uid": uid}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == {"type": kind, "uid": uid}, panel["title"]
    assert len(rules) == 3
    for rule in rules.values():
        queries = [d for d in rule["data"] if d["datasourceUid"] != "__expr__"]
        assert [q["datasourceUid"] for q in queries] == [uid]
        assert queries[0]["model"]["datasource"] == {"type": kind, "uid": uid}


def test_the_datasource_reads_every_connection_detail_from_the_environment(
    datasource: dict[str, Any],
) -> None:
    assert datasource["url"] == "${DROUGHTWATCH_DB_HOST}:${DROUGHTWATCH_DB_PORT}"
    assert datasource["user"] == "${DROUGHTWATCH_DB_USER}"
    assert datasource["jsonData"]["database"] == "${DROUGHTWATCH_DB_NAME}"
    assert datasource["jsonData"]["sslmode"] == "${DROUGHTWATCH_DB_SSLMODE}"
    assert datasource["secureJsonData"] == {"password": "${DROUGHTWATCH_DB_PASSWORD}"}
    assert "password" not in datasource


def test_the_dashboard_is_valid_for_the_dashboard_schema(
    dashboard: dict[str, Any], validator: jsonschema.Draft202012Validator
) -> None:
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(dashboard)]
    assert errors == []


@pytest.mark.parametrize(
    ("breakage", "where"),
    [
        (lambda d: d.pop("schemaVersion"), "$"),
        (lambda d: d["panels"][0].pop("datasource"), "$.panels[0]"),
        (lambda d: d["panels"][0]["gridPos"].update(w=30), "$.panels[0].gridPos.w"),
        (lambda d: d["panels"][4]["targets"][0].update(format="table"), "format"),
        (lambda d: d["panels"][5]["targets"][0].update(rawSql="DROP TABLE ledger"), "rawSql"),
        (
            lambda d: d["panels"][5]["fieldConfig"]["defaults"]["thresholds"]["steps"].reverse(),
            "steps",
        ),
        (lambda d: d["panels"][5]["options"].update(legend={"show": True}), "legend"),
        (lambda d: d["panels"][0].update(type="graph"), "type"),
        (lambda d: d.update(time={"from": "30 days ago", "to": "now"}), "time.from"),
    ],
)
def test_the_schema_rejects_a_broken_dashboard(
    dashboard: dict[str, Any],
    validator: jsonschema.Draft202012Validator,
    breakage: Any,
    where: str,
) -> None:
    broken = copy.deepcopy(dashboard)
    breakage(broken)
    errors = [e.json_path for e in validator.iter_errors(broken)]
    # a failing branch of the per-type rules is reported at the panel, so look in the context too
    paths = errors + [c.json_path for e in validator.iter_errors(broken) for c in (e.context or [])]
    assert errors, "the schema accepted a broken dashboard"
    assert any(where in p for p in paths), paths


def test_panels_fit_the_grid_without_overlapping(dashboard: dict[str, Any]) -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, panel["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_every_panel_query_is_one_the_sql_tests_run(dashboard: dict[str, Any]) -> None:
    known = {q.sql: q for q in grafana.QUERIES}
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            query = known.get(target["rawSql"])
            assert query is not None, f"{panel['title']}: SQL not in grafana.QUERIES"
            assert target["format"] == query.format


def test_fields_named_by_panels_are_columns_of_their_query(dashboard: dict[str, Any]) -> None:
    known = {q.sql: q for q in grafana.QUERIES}
    for panel in dashboard["panels"]:
        (target,) = panel["targets"]
        columns = set(known[target["rawSql"]].columns)
        if target["format"] == "time_series" and "metric" in columns:
            columns |= {"share"}
        reduce = panel["options"].get("reduceOptions")
        if reduce is not None:
            pattern = re.compile(reduce["fields"].strip("/"))
            assert any(pattern.search(c) for c in columns - {"time"}), panel["title"]
        for override in panel["fieldConfig"]["overrides"]:
            if override["matcher"]["id"] == "byName":
                assert override["matcher"]["options"] in columns, panel["title"]


def test_the_dashboard_covers_the_issue(dashboard: dict[str, Any]) -> None:
    titles = {p["title"]: p["type"] for p in dashboard["panels"]}
    assert titles == {
        "Current model version": "stat",
        "Latest prediction drift": "stat",
        "Images processed": "stat",
        "Files failed": "stat",
        "Class distribution per run": "timeseries",
        "Prediction drift": "timeseries",
        "Model quality": "timeseries",
        "Input drift": "timeseries",
        "Data quality": "timeseries",
        "Images per run": "timeseries",
        "Files per run by status": "timeseries",
        "Ledger": "table",
        "Stage runs": "table",
    }
    assert dashboard["title"] == "Model observability"
    # the batches are day partitions charted at midnight UTC: show them in UTC
    assert dashboard["timezone"] == "utc"
    assert dashboard["time"] == {"from": "now-30d/d", "to": "now+1d/d"}


def test_thresholds_come_from_observe_settings(dashboard: dict[str, Any]) -> None:
    defaults = {k: v.default for k, v in ObserveSettings.model_fields.items()}
    assert (defaults["drift_threshold"], defaults["feature_drift_threshold"]) == (0.25, 0.3)
    for title, threshold in (
        ("Prediction drift", defaults["drift_threshold"]),
        ("Latest prediction drift", defaults["drift_threshold"]),
        ("Input drift", defaults["feature_drift_threshold"]),
    ):
        steps = _panel(dashboard, title)["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert [s["value"] for s in steps] == [None, threshold], title
    for title in ("Prediction drift", "Input drift"):
        custom = _panel(dashboard, title)["fieldConfig"]["defaults"]["custom"]
        assert custom["thresholdsStyle"]["mode"] == "dashed"
    assert str(defaults["min_daily_images"]) in _panel(dashboard, "Prediction drift")["description"]


@pytest.mark.parametrize(
    ("uid", "panel", "flag"),
    [
        (grafana.ALERT_RULE_UID, "Prediction drift", "drift_detected"),
        (grafana.INPUT_DRIFT_RULE_UID, "Input drift", "input_drift_detected"),
        (grafana.ACCURACY_RULE_UID, "Model quality", "accuracy_alert"),
    ],
)
def test_each_alert_fires_on_observes_daily_flag_and_links_its_panel(
    dashboard: dict[str, Any], rules: dict[str, dict[str, Any]], uid: str, panel: str, flag: str
) -> None:
    rule = rules[uid]
    by_ref = {d["refId"]: d for d in rule["data"]}
    sql = by_ref["A"]["model"]["rawSql"]
    # the flag Observe set with the one drift comparison (or the margin), read from the days
    assert f"max({flag}::int) AS {flag}" in sql and "FROM daily_metrics" in sql
    assert by_ref["B"]["model"]["expression"] == "A"
    assert by_ref["B"]["model"]["reducer"] == "last"
    assert by_ref["C"]["model"]["expression"] == "B"
    (condition,) = by_ref["C"]["model"]["conditions"]
    assert condition["evaluator"] == {"type": "gt", "params": [0]}
    assert rule["condition"] == "C"
    assert rule["annotations"]["__dashboardUid__"] == dashboard["uid"]
    assert rule["annotations"]["__panelId__"] == str(_panel(dashboard, panel)["id"])


def test_the_dashboard_provider_reads_where_compose_mounts_the_dashboards(
    compose: dict[str, Any],
) -> None:
    (provider,) = _load_yaml("provisioning/dashboards/droughtwatch.yaml")["providers"]
    service = compose["services"]["grafana"]
    mounts = {}
    for volume in service["volumes"]:
        source, target, *_ = volume.split(":")
        mounts[target] = source
    assert mounts["/etc/grafana/provisioning"] == "./provisioning"
    assert (GRAFANA_DIR / mounts[provider["options"]["path"]] / grafana.DASHBOARD_FILE).is_file()
    home = service["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{provider['options']['path']}/{grafana.DASHBOARD_FILE}"


def test_compose_passes_the_datasource_variables_from_the_environment(
    compose: dict[str, Any],
) -> None:
    service = compose["services"]["grafana"]
    assert service["network_mode"] == "host"
    environment = service["environment"]
    datasource_text = (GRAFANA_DIR / "provisioning/datasources/droughtwatch.yaml").read_text()
    referenced = set(re.findall(r"\$\{([A-Z_]+)\}", datasource_text))
    assert referenced == set(grafana.DATASOURCE_ENV)
    for name in grafana.DATASOURCE_ENV:
        # passed through from the environment of `docker compose`, never a literal value
        assert re.fullmatch(rf"\$\{{{name}(:[-?][^}}]*)?\}}", environment[name]), name
    assert environment["GF_SERVER_HTTP_PORT"].startswith(f"${{{grafana.ENV_GRAFANA_PORT}")
