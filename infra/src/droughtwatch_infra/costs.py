"""What a stack costs, derived from the resources the program declares: what bills while the
stack is idle (per month), and what one run of the pipeline adds. Pure: it reads resource types
and their inputs (Pulumi's wire names, as the tests' mocks record them) and a price table, so
the README's cost tables are computed from the program and cannot drift from it
(infra/tests/test_costs.py checks both).

Prices are eu-west-1 (Ireland) on-demand list prices in USD, without the free tier, as read from
the AWS pricing pages on PRICES_DATE; check them in the AWS Pricing Calculator before relying on
a figure. What the program does not say (how big the image and the database are, how long a
stage runs) is an assumption, named in ASSUMPTIONS with where it comes from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from droughtwatch_contract.keys import KeyLayout
from droughtwatch_contract.settings import ObserveSettings, PlanSettings
from droughtwatch_contract.statemachine import (
    DEFAULT_MAX_CONCURRENCY,
    billed_transitions,
    invocations,
)

PRICES_DATE = "2026-12-04"
PRICES_SOURCE = "AWS pricing pages, eu-west-1 (Ireland), on-demand, USD, no free tier"
HOURS_PER_MONTH = 730


@dataclass(frozen=True)
class Price:
    usd: float
    unit: str


PRICES: dict[str, Price] = {
    # RDS for PostgreSQL, single-AZ (Multi-AZ bills twice)
    "rds.db.t4g.micro": Price(0.018, "hour"),
    "rds.db.t4g.small": Price(0.036, "hour"),
    "rds.db.t4g.medium": Price(0.072, "hour"),
    "rds.gp3": Price(0.127, "GB-month"),
    # Aurora PostgreSQL (Standard storage configuration), Serverless v2
    "aurora.acu": Price(0.13, "ACU-hour"),
    "aurora.storage": Price(0.11, "GB-month"),
    "aurora.io": Price(0.22, "million requests"),
    # EC2 and EBS
    "ec2.t4g.nano": Price(0.0046, "hour"),
    "ec2.t4g.micro": Price(0.0092, "hour"),
    "ec2.public_ipv4": Price(0.005, "hour"),
    "ebs.gp3": Price(0.088, "GB-month"),
    # VPC interface endpoint (PrivateLink), per zone
    "vpce.interface": Price(0.011, "hour"),
    "secretsmanager.secret": Price(0.40, "secret-month"),
    "ecr.storage": Price(0.10, "GB-month"),
    "cloudwatch.alarm": Price(0.10, "alarm-month"),
    "cloudwatch.logs_ingested": Price(0.57, "GB"),
    "lambda.gb_second": Price(0.0000166667, "GB-second"),
    "lambda.request": Price(0.20, "million requests"),
    "sfn.transition": Price(0.025, "1,000 transitions"),
    "s3.standard": Price(0.023, "GB-month"),
    "s3.standard_ia": Price(0.0125, "GB-month"),
    "s3.put": Price(0.005, "1,000 requests"),
    "s3.get": Price(0.0004, "1,000 requests"),
}


@dataclass(frozen=True)
class Assumptions:
    """What the program does not say. Figures measured here come from the README's benchmark
    table (its date and machine are there)."""

    # The service image as ECR stores it (compressed; the kept images share the dependency
    # layers): torch (CPU), onnxruntime, Evidently, pandas and pyarrow. Not measured (no Docker
    # daemon where this was written).
    image_gb: float = 2.0
    # The Aurora cluster volume: PostgreSQL's catalogs and a year of daily ledger and metrics
    # rows (tens of MB). Automated backups up to the volume's size are free within the
    # retention period.
    aurora_volume_gb: float = 2.0
    # One run: 10,000 images in 10 files; per image 46.7 KB of raw TFRecord (the real shard:
    # 3,786,183 bytes, 81 records), processed/raw bytes 0.972, about 100 bytes of predictions;
    # an HTML report of 3.9 MB for the day, and for each file only with save_file_reports
    # (Observe's setting; off by default).
    images: int = 10_000
    files: int = 10
    raw_kb_per_image: float = 46.7
    processed_to_raw: float = 0.972
    predictions_bytes_per_image: int = 100
    report_mb: float = 3.9
    file_reports: bool = ObserveSettings.model_fields["save_file_reports"].default
    # Each stage's wall time on the 10,000-image batch (the pipeline benchmark, a 2-core
    # machine); Lambda at 1-3 GB has 0.6-1.7 vCPU, so a stage may take up to twice as long.
    stage_seconds: Mapping[str, float] = field(
        default_factory=lambda: {"processing": 9.6, "inference": 13.9, "observe": 9.6}
    )
    # An Aurora cluster that resumes for a run runs at least 0.5 ACU until it pauses again.
    active_acu: float = 0.5
    # The day's files in one round of the Map. Aurora I/O requests of one run's ledger and
    # metrics writes.
    rounds: int = 1
    aurora_io_requests: int = 20_000
    # The pipeline's JSON log lines of one run.
    log_mb: float = 1.0

    @property
    def items(self) -> int:
        """The Map's items for the day's files, as Plan splits them: at most item_max_files
        files each, and at least as many items as children run at once (max_concurrency, by
        default) when there are that many files: 10 files are 10 items of one file."""
        most = PlanSettings.model_fields["item_max_files"].default
        return max(-(-self.files // most), min(self.files, DEFAULT_MAX_CONCURRENCY))


ASSUMPTIONS = Assumptions()


@dataclass(frozen=True)
class Resource:
    """A resource as the program declares it: Pulumi type, logical name, inputs (wire names),
    and its id where another resource refers to it."""

    typ: str
    name: str
    inputs: Mapping[str, Any]
    id: str = ""


@dataclass(frozen=True)
class LineItem:
    category: str
    what: str
    quantity: float
    price: str  # a key of PRICES

    @property
    def unit_price(self) -> Price:
        return PRICES[self.price]

    @property
    def usd(self) -> float:
        return self.quantity * self.unit_price.usd


# What may bill while a stack is idle, by category.
DATABASE_COMPUTE = "database compute"
DATABASE_STORAGE = "database storage and backups"
SECRETS = "secrets"
IMAGE_STORAGE = "image storage (ECR)"
ALARMS = "alarms"
BASTION_VOLUME = "bastion volume"
BASTION_COMPUTE = "bastion compute and public IPv4"
INTERFACE_ENDPOINTS = "interface endpoints"


def _instance_price(instance_class: str, family: str) -> str:
    key = f"{family}.{instance_class}"
    if key not in PRICES:
        raise KeyError(f"no price for {key}: add it to costs.PRICES")
    return key


def idle_items(
    resources: Iterable[Resource], assumptions: Assumptions = ASSUMPTIONS
) -> list[LineItem]:
    """Everything that bills in a month without a single run, one line per resource and
    charge. Free while idle (so absent): the VPC, subnets, security groups, the internet and S3
    gateway endpoints, IAM, the Lambda functions, the state machine, the schedule, the queue,
    the topic, the rules, and empty log groups and buckets."""
    resources = list(resources)
    stopped = {
        r.inputs["instanceId"]
        for r in resources
        if r.typ == "aws:ec2transitgateway/instanceState:InstanceState"
        and r.inputs.get("state") == "stopped"
    }
    items: list[LineItem] = []
    for r in resources:
        items.extend(_idle(r, stopped, assumptions))
    # in a fixed order: the program registers resources in an order that varies
    return sorted(items, key=lambda item: (item.category, item.what))


def _idle(r: Resource, stopped: set[str], a: Assumptions) -> list[LineItem]:
    i = r.inputs
    match r.typ:
        case "aws:rds/instance:Instance":
            copies = 2 if i.get("multiAz") else 1
            price = _instance_price(i["instanceClass"], "rds")
            return [
                LineItem(
                    DATABASE_COMPUTE,
                    f"`{r.name}`: {i['instanceClass']}"
                    f"{' Multi-AZ' if copies == 2 else ''}, all month",
                    copies * HOURS_PER_MONTH,
                    price,
                ),
                LineItem(
                    DATABASE_STORAGE,
                    f"`{r.name}`: {i['allocatedStorage']:g} GB gp3",
                    copies * float(i["allocatedStorage"]),
                    "rds.gp3",
                ),
                *_managed_secret(r),
            ]
        case "aws:rds/cluster:Cluster":
            minimum = _min_acu(i)
            found = [
                LineItem(
                    DATABASE_STORAGE,
                    f"`{r.name}`: Aurora volume, {a.aurora_volume_gb:g} GB "
                    "(backups within the retention: free up to its size)",
                    a.aurora_volume_gb,
                    "aurora.storage",
                ),
                *_managed_secret(r),
            ]
            if minimum > 0:  # it never pauses
                found.append(
                    LineItem(
                        DATABASE_COMPUTE,
                        f"`{r.name}`: {minimum:g} ACU minimum, all month",
                        minimum * HOURS_PER_MONTH,
                        "aurora.acu",
                    )
                )
            return found
        case "aws:ec2/instance:Instance":
            volume = float((i.get("rootBlockDevice") or {})["volumeSize"])
            found = [
                LineItem(
                    BASTION_VOLUME, f"`{r.name}`: {volume:g} GB gp3 root volume", volume, "ebs.gp3"
                )
            ]
            if r.id not in stopped:
                found.append(
                    LineItem(
                        BASTION_COMPUTE,
                        f"`{r.name}`: {i['instanceType']}, all month",
                        HOURS_PER_MONTH,
                        _instance_price(i["instanceType"], "ec2"),
                    )
                )
                if i.get("associatePublicIpAddress"):
                    found.append(
                        LineItem(
                            BASTION_COMPUTE,
                            f"`{r.name}`: public IPv4 address",
                            HOURS_PER_MONTH,
                            "ec2.public_ipv4",
                        )
                    )
            return found
        case "aws:ec2/vpcEndpoint:VpcEndpoint" if i.get("vpcEndpointType") == "Interface":
            zones = len(i.get("subnetIds") or [])
            service = str(i["serviceName"]).rsplit(".", 1)[-1]
            return [
                LineItem(
                    INTERFACE_ENDPOINTS,
                    f"`{r.name}`: {service}, {zones} zones",
                    zones * HOURS_PER_MONTH,
                    "vpce.interface",
                )
            ]
        case "aws:secretsmanager/secret:Secret":
            return [LineItem(SECRETS, f"`{r.name}`: {i['name']}", 1, "secretsmanager.secret")]
        case "aws:ecr/repository:Repository":
            return [
                LineItem(
                    IMAGE_STORAGE,
                    f"`{r.name}`: the service image, {a.image_gb:g} GB",
                    a.image_gb,
                    "ecr.storage",
                )
            ]
        case "aws:cloudwatch/metricAlarm:MetricAlarm":
            return [LineItem(ALARMS, f"`{r.name}`: {i['name']}", 1, "cloudwatch.alarm")]
    return []


def _managed_secret(r: Resource) -> list[LineItem]:
    """RDS keeps the master password in a secret of its own (not a resource of the program)."""
    if not r.inputs.get("manageMasterUserPassword"):
        return []
    return [
        LineItem(SECRETS, f"`{r.name}`: the RDS-managed master secret", 1, "secretsmanager.secret")
    ]


def run_items(
    resources: Iterable[Resource], assumptions: Assumptions = ASSUMPTIONS
) -> list[LineItem]:
    """What one run of ``assumptions.images`` images adds: the stages' Lambda time (each
    function's memory from the program), the state machine, S3 requests, the database
    resuming for the run (Aurora) and its I/O, the log lines, and a month of Standard storage
    of the run's products."""
    resources = list(resources)
    a = assumptions
    items: list[LineItem] = []
    memory = {
        r.inputs["name"].rsplit("-", 1)[-1]: float(r.inputs["memorySize"]) / 1024
        for r in resources
        if r.typ == "aws:lambda/function:Function"
    }
    for stage, seconds in a.stage_seconds.items():
        items.append(
            LineItem(
                "compute",
                f"{stage}: {seconds:g} s at {memory[stage] * 1024:g} MB",
                seconds * memory[stage],
                "lambda.gb_second",
            )
        )
    requests = invocations(a.items, a.rounds)
    items.append(
        LineItem("compute", f"Lambda requests ({requests})", requests / 1e6, "lambda.request")
    )
    transitions = billed_transitions(a.items, a.rounds)
    items.append(
        LineItem(
            "compute",
            f"Step Functions transitions ({a.items} items, {a.rounds} round)",
            transitions / 1000,
            "sfn.transition",
        )
    )
    for r in resources:
        if r.typ == "aws:rds/cluster:Cluster":
            if _min_acu(r.inputs) == 0:
                pause = float(_scaling(r.inputs).get("secondsUntilAutoPause", 300))
                busy = sum(a.stage_seconds.values()) + pause
                items.append(
                    LineItem(
                        "database",
                        f"`{r.name}`: resumed for the run and {pause:g} s after, "
                        f"{a.active_acu:g} ACU",
                        a.active_acu * busy / 3600,
                        "aurora.acu",
                    )
                )
            items.append(
                LineItem("database", f"`{r.name}`: I/O", a.aurora_io_requests / 1e6, "aurora.io")
            )
    # S3: each file read raw and processed and written processed, predictions (and its report
    # when file reports are on); the day's report; the model (3 objects) once.
    puts = (2 + a.file_reports) * a.files + 1
    items.append(LineItem("requests", "S3 PUT (products, reports)", puts / 1000, "s3.put"))
    items.append(LineItem("requests", "S3 GET and LIST", (3 * a.files + 6) / 1000, "s3.get"))
    items.append(
        LineItem("logs", "log lines ingested", a.log_mb / 1024, "cloudwatch.logs_ingested")
    )
    kept = stored_days(resources)
    layout = KeyLayout()
    for prefix, gb in run_storage_gb(a, layout).items():
        days = kept.get(prefix)
        month = MONTH_DAYS if days is None else min(days, MONTH_DAYS)
        held = "kept" if days is None else f"gone after {days} days"
        items.append(
            LineItem(
                "storage",
                f"`{prefix}` ({gb * 1000:,.1f} MB, {held}): its first 30 days",
                gb * month / MONTH_DAYS,
                "s3.standard",
            )
        )
    return items


MONTH_DAYS = 30


def _scaling(inputs: Mapping[str, Any]) -> Mapping[str, Any]:
    """An Aurora cluster's Serverless v2 scaling configuration ({} when it has none)."""
    return inputs.get("serverlessv2ScalingConfiguration") or {}


def _min_acu(inputs: Mapping[str, Any]) -> float:
    """An Aurora cluster's minimum capacity: 0 pauses it when idle."""
    return float(_scaling(inputs).get("minCapacity", 0))


def run_storage_gb(a: Assumptions, layout: KeyLayout) -> dict[str, float]:
    """The products one run writes, in GB, by prefix."""
    raw = a.images * a.raw_kb_per_image / 1e6
    return {
        layout.processed: raw * a.processed_to_raw,
        layout.predictions: a.images * a.predictions_bytes_per_image / 1e9,
        **({layout.reports: a.files * a.report_mb / 1000} if a.file_reports else {}),
        layout.daily_reports: a.report_mb / 1000,
    }


def stored_days(resources: Iterable[Resource]) -> dict[str, int]:
    """How long the data bucket's lifecycle rules keep an object under each prefix that has a
    rule: its expiration, then the days its noncurrent version stays (the bucket is
    versioned). Prefixes without an expiration keep their objects."""
    days: dict[str, int] = {}
    for r in resources:
        if r.typ != "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration":
            continue
        if "-data-" not in str(r.inputs["bucket"]):
            continue
        rules = r.inputs["rules"]
        noncurrent = max(
            int(rule["noncurrentVersionExpiration"]["noncurrentDays"])
            for rule in rules
            if rule.get("noncurrentVersionExpiration")
        )
        for rule in rules:
            expiry = (rule.get("expiration") or {}).get("days")
            prefix = (rule.get("filter") or {}).get("prefix")
            if expiry and prefix:
                days[prefix] = int(expiry) + noncurrent
    return days


def total(items: Iterable[LineItem]) -> float:
    return sum(item.usd for item in items)


def _money(usd: float) -> str:
    return f"${usd:,.2f}" if usd >= 0.1 or usd == 0 else f"${usd:.4f}"


def _number(value: float, places: int = 6) -> str:
    """Without an exponent (3e-06 is 0.000003), thousands separated."""
    return f"{value:,.{places}f}".rstrip("0").rstrip(".")


def markdown_table(items: Iterable[LineItem], per: str = "month") -> str:
    """A Markdown table of the items and their total (what infra/README.md shows)."""
    items = list(items)
    lines = [
        f"| what | resource and detail | quantity | price | per {per} |",
        "|---|---|---:|---:|---:|",
    ]
    for item in items:
        price = item.unit_price
        lines.append(
            f"| {item.category} | {item.what} | {_number(item.quantity)} {price.unit} | "
            f"${_number(price.usd, 10)} / {price.unit} | {_money(item.usd)} |"
        )
    lines.append(f"| **total** | | | | **{_money(total(items))}** |")
    return "\n".join(lines)
