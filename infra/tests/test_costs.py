"""What a stack costs, from the program's own resources under the mocks: the dev stack's idle
month is only storage, secrets, the image, an alarm and a stopped bastion's volume, under $5;
prod's defaults are itemised; and infra/README.md's tables are exactly these (so a change to
the program that changes a cost changes the README, or this test fails)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from droughtwatch_infra import costs

README = "infra/README.md"
# What the dev stack may bill while idle (the bound).
DEV_IDLE_MAY_BILL = {
    costs.DATABASE_STORAGE,
    costs.SECRETS,
    costs.IMAGE_STORAGE,
    costs.ALARMS,
    costs.BASTION_VOLUME,
}


def resources(stack: Any) -> list[costs.Resource]:
    return [costs.Resource(r.typ, r.name, r.inputs, r.id) for r in stack.resources]


def inventory(items: list[costs.LineItem]) -> list[tuple[str, str]]:
    return sorted((item.category, item.what.split(":", 1)[0]) for item in items)


@pytest.fixture(scope="module")
def profiles(infra: Any) -> dict[str, list[costs.Resource]]:
    """The stacks the README prices: dev as Pulumi.dev.yaml sets it, a stack with the
    defaults only (prod), and the defaults with the database on Aurora."""
    return {
        "dev": resources(infra.run_main("dev")),
        "prod": resources(infra.run_main("prod", stack_file=False)),
        "prod-aurora": resources(
            infra.run_main(
                "prod", {"droughtwatch:database": {"kind": "aurora-serverless"}}, stack_file=False
            )
        ),
    }


def test_the_idle_dev_stack_bills_only_storage_secrets_image_alarms_and_a_stopped_bastion(
    profiles: dict[str, list[costs.Resource]],
) -> None:
    items = costs.idle_items(profiles["dev"])
    assert {item.category for item in items} <= DEV_IDLE_MAY_BILL
    assert inventory(items) == [
        (costs.ALARMS, "`alerts-schedule-dead-letters`"),
        (costs.BASTION_VOLUME, "`bastion`"),  # stopped: its volume only
        (costs.DATABASE_STORAGE, "`database-cluster`"),  # paused: storage only
        (costs.IMAGE_STORAGE, "`image-repository`"),
        (costs.SECRETS, "`database-cluster`"),  # the RDS-managed master secret
        (costs.SECRETS, "`migration-grafana`"),
    ]
    assert costs.total(items) <= 5.0
    assert costs.total(items) == pytest.approx(2.02, abs=0.005)


def test_prod_defaults_are_itemised_with_the_instance_and_its_endpoint(
    profiles: dict[str, list[costs.Resource]],
) -> None:
    items = costs.idle_items(profiles["prod"])
    assert inventory(items) == [
        (costs.ALARMS, "`alerts-schedule-dead-letters`"),
        (costs.BASTION_VOLUME, "`bastion`"),
        (costs.DATABASE_COMPUTE, "`database-postgres`"),
        (costs.DATABASE_STORAGE, "`database-postgres`"),
        (costs.IMAGE_STORAGE, "`image-repository`"),
        (costs.INTERFACE_ENDPOINTS, "`endpoints-secretsmanager-endpoint`"),
        (costs.SECRETS, "`database-postgres`"),
        (costs.SECRETS, "`migration-grafana`"),
    ]
    by_category = {item.category: item for item in items}
    # 730 hours of db.t4g.micro; the endpoint in both private subnets' zones
    assert by_category[costs.DATABASE_COMPUTE].quantity == 730
    assert by_category[costs.INTERFACE_ENDPOINTS].quantity == 2 * 730
    aurora = costs.idle_items(profiles["prod-aurora"])
    assert costs.INTERFACE_ENDPOINTS not in {item.category for item in aurora}
    assert costs.total(aurora) < costs.total(items)


def test_an_always_on_bastion_and_a_database_that_never_pauses_bill_their_hours(
    infra: Any,
) -> None:
    stack = infra.run_main(
        "dev",
        {
            "droughtwatch:bastion": "always",
            "droughtwatch:database": {"kind": "aurora-serverless", "min_capacity": 0.5},
        },
    )
    items = costs.idle_items(resources(stack))
    compute = (costs.BASTION_COMPUTE, costs.DATABASE_COMPUTE)
    hourly = {(i.category, i.price): i.quantity for i in items if i.category in compute}
    assert hourly == {
        (costs.BASTION_COMPUTE, "ec2.t4g.nano"): 730,
        (costs.BASTION_COMPUTE, "ec2.public_ipv4"): 730,
        (costs.DATABASE_COMPUTE, "aurora.acu"): 365,
    }


def test_a_run_costs_cents_and_its_storage_follows_the_lifecycle_rules(
    profiles: dict[str, list[costs.Resource]],
) -> None:
    dev = costs.run_items(profiles["dev"])
    assert costs.total(dev) < 0.05
    storage = {item.what.split(" ", 1)[0]: item for item in dev if item.category == "storage"}
    # dev: processed files expire after 7 days and stay 7 more as noncurrent versions
    assert "gone after 14 days" in storage["`processed/`"].what
    assert "kept" in storage["`predictions/`"].what and "kept" in storage["`daily-reports/`"].what
    # Aurora resumes for the run and runs until it pauses again
    (resume,) = [i for i in dev if i.price == "aurora.acu"]
    assert "300 s after" in resume.what
    prod = costs.run_items(profiles["prod"])
    assert not [i for i in prod if i.price == "aurora.acu"]  # an instance bills by the hour


def test_an_instance_type_without_a_price_is_named() -> None:
    resource = costs.Resource(
        "aws:rds/instance:Instance",
        "database-postgres",
        {"instanceClass": "db.r7g.large", "allocatedStorage": 20},
    )
    message = "no price for rds.db.r7g.large: add it to costs.PRICES"
    with pytest.raises(KeyError, match=re.escape(message)):
        costs.idle_items([resource])


def _readme(infra: Any) -> str:
    return (infra.REPOSITORY / README).read_text()


@pytest.mark.parametrize(
    ("profile", "kind"),
    [("dev", "idle"), ("prod", "idle"), ("prod-aurora", "idle"), ("dev", "run"), ("prod", "run")],
)
def test_the_readme_shows_the_programs_costs(
    infra: Any, profiles: dict[str, list[costs.Resource]], profile: str, kind: str
) -> None:
    """Each table sits between ``<!-- costs:<profile>:<kind> -->`` markers in the README."""
    if kind == "idle":
        table = costs.markdown_table(costs.idle_items(profiles[profile]))
    else:
        table = costs.markdown_table(costs.run_items(profiles[profile]), per="run")
    marker = f"<!-- costs:{profile}:{kind} -->"
    found = re.search(f"{re.escape(marker)}\n(.*?)\n{re.escape(marker)}", _readme(infra), re.S)
    assert found, f"{README} has no {marker} ... {marker} section"
    assert found.group(1) == table, f"update {README} between the {marker} markers to:\n{table}"


def test_the_readme_dates_its_prices(infra: Any) -> None:
    text = _readme(infra)
    assert costs.PRICES_DATE in text and costs.PRICES_SOURCE in text
