"""The local runner: the deployed state machine definition executed in-process by moto's Step
Functions interpreter, with each Lambda task dispatched to the real handler. The buckets are
folders under ``LocalConfig.store_root`` (``adapters.folder_store``), shared by every local process
at once, as S3 is by Lambdas; moto keeps only the state machine, the functions and their role.

The definition's Distributed Map runs its children on moto's threads, ``concurrency`` at once
(its MaxConcurrency), and each child's invocations go to a pool of as many warm worker
processes (`workers.WorkerPool`, kept for the process's life): N children really run at once,
as N Lambda containers would. The day step, after the Map, goes to a warm worker of its own,
which imports Evidently while the Map runs (`DAY_PRELOAD`).
moto's Map gets what it lacks (each child's own history, the tolerance) from `map_runs`.

Each pipeline holds a claim lock (`adapters.ledger.hold_claim_lock`) on a connection of its own
for as long as it is open, and the stages (in the workers) record its key on every file they
claim: when the process dies (kill -9, a crash), PostgreSQL drops the lock with the connection,
and the next local run takes the dead run's files over at once, while a live run's files stay
its own. So the lease keeps the settings' default, as on AWS: it only bounds a run that hangs.

The one seam is `_dispatch`, which replaces moto's simple Lambda backend's `invoke` (it would
answer a canned string) with an invocation of the handler that the function's name selects, in
a worker. It keeps Lambda's contract: the payload in, the JSON result out, an uncaught
exception as an ``Unhandled`` function error, and injected service errors as the API errors
Step Functions retries. moto is pinned to a tested range in pyproject.toml because this seam
names its internals.
"""

from __future__ import annotations

import io
import json
import logging
import os
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

from droughtwatch_contract.settings import CommonSettings, InferenceSettings, env_name
from droughtwatch_contract.stages import WORKFLOW
from droughtwatch_contract.statemachine import definition
from droughtwatch_inference.adapters.folder_store import FolderStore

from droughtwatch_tools.execution import (
    TERMINAL,
    Execution,
    MapRun,
    PlanSummary,
    describe_map_run,
    execution_name,
    map_run_arns,
    read_execution,
)
from droughtwatch_tools.local.map_runs import ChildRecorder
from droughtwatch_tools.local.workers import (
    Invocation,
    WorkerPool,
    default_concurrency,
    forwarded_environment,
    worker_threads,
)

# What each warm worker imports in the background from its start: every step's handler, and
# what the first Inference would otherwise load on its first file (torch for the baseline's
# torch.export model, and the modules torch.export.load imports: 2 of its 3 s).
PRELOAD = (
    *dict.fromkeys(step.handler.rpartition(".")[0] for step in WORKFLOW),
    "droughtwatch_inference.adapters.torch_predictor",
    "torch._export.serde.serialize",
)
# The day step runs in a worker of its own, as it is a function of its own on AWS: one that
# imports Evidently, which the day needs and the Map's children never do (about 4 s of CPU),
# while the Map runs, at a lower CPU priority (DAY_NICENESS), so that it takes what the Map
# leaves idle. The day then starts with Evidently loaded instead of importing it while
# everything waits for it.
DAY_PRELOAD = (
    WORKFLOW.day.handler.rpartition(".")[0],
    "droughtwatch_inference.logic.evidently_api:load_evidently",
)
DAY_NICENESS = 10
REGION = "eu-west-1"
ACCOUNT = "123456789012"
FUNCTION_TIMEOUT_SECONDS = 900
# How long the claim lock's connection may take (the stages' own default).
CONNECT_TIMEOUT_SECONDS: int = CommonSettings.model_fields[
    "database_connect_timeout_seconds"
].default
# What starts a local execution: its input's trigger and its name's first word.
LOCAL_TRIGGER = "local"


@dataclass(frozen=True)
class LocalConfig:
    database_dsn: str
    work_dir: Path
    store_root: Path
    data_bucket: str = "droughtwatch-local-data"
    model_bucket: str = "droughtwatch-local-models"
    model_prefix: str = InferenceSettings.model_fields["model_prefix"].default
    name: str = "droughtwatch-local"
    extra_env: dict[str, str] = field(default_factory=dict)

    def function_name(self, step: str) -> str:
        return function_name(self.name, step)

    def environment(self) -> dict[str, str]:
        """The handlers' DROUGHTWATCH_* variables, each named from its settings model."""
        values = {
            (CommonSettings, "data_bucket"): self.data_bucket,
            (InferenceSettings, "model_bucket"): self.model_bucket,
            (InferenceSettings, "model_prefix"): self.model_prefix,
            (CommonSettings, "database_dsn"): self.database_dsn,
            (CommonSettings, "work_dir"): str(self.work_dir),
            (CommonSettings, "store_root"): str(self.store_root),
        }
        return {
            **{env_name(model, field): value for (model, field), value in values.items()},
            **self.extra_env,
        }


# How often a run reads its map run's counts for its progress.
PROGRESS_SECONDS = 0.5
ProgressCallback = Callable[[MapRun, PlanSummary | None], None]


class LocalPipeline:
    """The pipeline's bucket folders, and moto with its functions and state machine and the seam
    installed. Use as a context manager; `run()` executes the state machine once. ``concurrency``:
    the Map's MaxConcurrency and the number of worker processes (default: the CPUs)."""

    def __init__(self, config: LocalConfig, concurrency: int | None = None) -> None:
        self.config = config
        self.concurrency = default_concurrency() if concurrency is None else concurrency
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {self.concurrency}")
        self.store = FolderStore(config.store_root)
        self.faults: dict[str, list[str]] = {}
        self.crashes: dict[str, list[str]] = {}
        self.invocations: list[tuple[str, float]] = []
        self._lock = threading.Lock()
        self._stack: ExitStack | None = None
        self._pool: WorkerPool | None = None
        self._day_pool: WorkerPool | None = None
        self._recorder = ChildRecorder()
        # each run's rounds of Plan that handed out items: the k-th starts the k-th map run
        self._plans: dict[str, list[PlanSummary]] = {}
        self.state_machine_arn = ""
        self.claim_lock: int | None = None

    @property
    def cancelled(self) -> _Events:
        """The event that tells the running steps to stop claiming (a Ctrl-C, a timeout)."""
        if self._pool is None or self._day_pool is None:
            raise RuntimeError("the pipeline is not open")
        return _Events(self._pool.cancelled, self._day_pool.cancelled)

    # -- lifecycle ------------------------------------------------------------------------------
    def __enter__(self) -> LocalPipeline:
        stack = ExitStack()
        self._stack = stack
        try:
            self._open(stack)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _open(self, stack: ExitStack) -> None:
        from moto import mock_aws
        from moto.awslambda_simple.models import LambdaSimpleBackend

        self.claim_lock = self._hold_claim_lock(stack)
        env = {
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_SESSION_TOKEN": "local",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            **self.config.environment(),
        }
        if self.claim_lock is not None:
            env[env_name(CommonSettings, "claim_lock")] = str(self.claim_lock)
        threads = env_name(InferenceSettings, "torch_threads")
        if threads not in os.environ:
            env[threads] = str(worker_threads(self.concurrency))
        cleared = [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL") or k == "AWS_PROFILE"]
        stack.enter_context(_patched_environ(env, cleared))
        self._pool = WorkerPool.shared(self.concurrency, PRELOAD)
        self._day_pool = WorkerPool.shared(1, DAY_PRELOAD, DAY_NICENESS)
        for pool in (self._pool, self._day_pool):
            pool.start()  # the workers start while moto reads the definition
        stack.enter_context(
            mock_aws(
                config={
                    "stepfunctions": {"execute_state_machine": True},
                    "lambda": {"use_docker": False},
                }
            )
        )
        pipeline = self

        def dispatch(
            backend: Any,
            function_name: str,
            qualifier: Any,
            body: Any,
            headers: Any,
            response_headers: dict[str, str],
        ) -> bytes:
            return pipeline._dispatch(function_name, body, response_headers)

        stack.enter_context(mock.patch.object(LambdaSimpleBackend, "invoke", dispatch))
        stack.enter_context(self._recorder.patches())
        # moto's interpreter logs every caught task error with its whole state; the execution
        # history holds the same facts in the form users read.
        moto_log = logging.getLogger("moto.stepfunctions")
        level = moto_log.level
        moto_log.setLevel(logging.CRITICAL)
        stack.callback(moto_log.setLevel, level)
        self._create_resources()

    def __exit__(self, *exc: object) -> None:
        if self._stack is not None:
            if exc and isinstance(exc[1], KeyboardInterrupt):
                for pool in (self._pool, self._day_pool):
                    if pool is not None:
                        pool.discard()  # a second Ctrl-C: leave now
            self._stack.close()
            self._stack = None
            self._pool = self._day_pool = None

    def _hold_claim_lock(self, stack: ExitStack) -> int | None:
        """The key of a claim lock held until the pipeline closes (or the process dies), or None
        when the database cannot be reached: then the stages report that themselves, and what
        they claim ends with its lease."""
        import psycopg
        from droughtwatch_inference.adapters.ledger import hold_claim_lock

        try:
            conn = psycopg.connect(
                self.config.database_dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS
            )
        except psycopg.Error:
            return None
        stack.callback(conn.close)
        return hold_claim_lock(conn)

    # -- resources ------------------------------------------------------------------------------
    def _create_resources(self) -> None:
        for bucket in (self.config.data_bucket, self.config.model_bucket):
            self.store.create_bucket(bucket)
        self.state_machine_arn = create_state_machine(
            self.config.name, max_concurrency=self.concurrency
        )

    # -- the seam -------------------------------------------------------------------------------
    def _step_of(self, function_name: str) -> str:
        name = (
            function_name.rsplit(":", 1)[-1] if function_name.startswith("arn:") else function_name
        )
        for step in WORKFLOW.names:
            if name == self.config.function_name(step):
                return step
        raise KeyError(f"no droughtwatch handler for function {function_name!r}")

    def _dispatch(self, function_name: str, body: Any, response_headers: dict[str, str]) -> bytes:
        from droughtwatch_inference import logs
        from moto.core.exceptions import JsonRESTError

        step = self._step_of(function_name)
        with self._lock:
            pending = self.faults.get(step)
            fault = pending.pop(0) if pending else None
            crashes = self.crashes.get(step)
            crash = crashes.pop(0) if crashes else None
        if fault is not None:
            raise JsonRESTError(fault, f"injected Lambda service error for {step}")
        event = json.loads(body) if body else {}
        started = time.monotonic()
        pool = self._day_pool if step == WORKFLOW.day.name else self._pool
        if pool is None:
            raise RuntimeError("the pipeline is not open")
        outcome = pool.invoke(
            Invocation(
                handler=WORKFLOW[step].handler,
                function_name=self.config.function_name(step),
                event=event,
                environment=forwarded_environment(),
                timeout_seconds=FUNCTION_TIMEOUT_SECONDS,
                log_file=logs.log_file(),
                crash=crash,
            )
        )
        with self._lock:
            self.invocations.append((step, time.monotonic() - started))
        if outcome.unhandled:
            # What Lambda does with an uncaught exception: an Unhandled function error.
            response_headers["x-amz-function-error"] = "Unhandled"
        elif step == WORKFLOW.plan.name:
            self._note_plan(outcome.payload)
        return outcome.payload

    def _note_plan(self, payload: bytes) -> None:
        """Remember what Plan handed out (for the progress), by run."""
        try:
            body = json.loads(payload).get("body", {})
            summary = PlanSummary.from_report(body[WORKFLOW.plan.name])
            run_id = str(body["run_id"])
        except (ValueError, KeyError, TypeError, AttributeError):
            return  # a failed Plan: the execution reports it
        if summary.items:
            with self._lock:
                self._plans.setdefault(run_id, []).append(summary)

    def inject_service_error(
        self, stage: str, code: str = "TooManyRequestsException", times: int = 1
    ) -> None:
        """Make the next ``times`` invocations of ``stage`` fail as the Lambda API would."""
        with self._lock:
            self.faults.setdefault(stage, []).extend([code] * times)

    def inject_crash(self, step: str, message: str, times: int = 1) -> None:
        """Make the next ``times`` invocations of ``step`` raise in their worker, where the
        handler would run: an uncaught exception, as a handler's own would be."""
        with self._lock:
            self.crashes.setdefault(step, []).extend([message] * times)

    # -- running --------------------------------------------------------------------------------
    def start(self, payload: dict[str, Any] | None = None, *, name: str | None = None) -> str:
        """Start an execution, with time again for the steps (an earlier run's Ctrl-C told the
        warm workers there was none); returns its ARN (`wait` follows it to its end)."""
        import boto3

        self.cancelled.clear()
        sfn = boto3.client("stepfunctions", region_name=REGION)
        return sfn.start_execution(
            stateMachineArn=self.state_machine_arn,
            name=name or execution_name(LOCAL_TRIGGER),
            input=json.dumps(payload or {"trigger": LOCAL_TRIGGER}),
        )["executionArn"]

    def run(
        self,
        payload: dict[str, Any] | None = None,
        *,
        name: str | None = None,
        timeout_seconds: float = 3600,
        on_progress: ProgressCallback | None = None,
    ) -> Execution:
        """Execute the state machine once and wait for its end. Past ``timeout_seconds``, or
        at the first Ctrl-C, the running steps are told they have no time left: each finishes
        its current file and stops (a second Ctrl-C leaves at once)."""
        return self.wait(
            self.start(payload, name=name),
            timeout_seconds=timeout_seconds,
            on_progress=on_progress,
        )

    def wait(
        self,
        arn: str,
        *,
        timeout_seconds: float = 3600,
        on_progress: ProgressCallback | None = None,
    ) -> Execution:
        """Follow an execution to its end; then read it, with its map runs and their children.
        ``on_progress`` hears the current map run's counts and Plan's round as it goes."""
        import boto3

        sfn = boto3.client("stepfunctions", region_name=REGION)
        started = time.monotonic()
        reported = 0.0
        while True:
            try:
                if sfn.describe_execution(executionArn=arn)["status"] in TERMINAL:
                    break
                if time.monotonic() - started > timeout_seconds:
                    self.cancelled.set()
                if on_progress is not None and time.monotonic() - reported > PROGRESS_SECONDS:
                    reported = time.monotonic()
                    self._progress(sfn, arn, on_progress)
                time.sleep(0.05)
            except KeyboardInterrupt:
                if self.cancelled.is_set():
                    raise  # a second Ctrl-C: leave now; a later run takes the file over
                # The first Ctrl-C: let the running steps finish their current file and stop.
                self.cancelled.set()
        execution = read_execution(sfn, arn)
        execution.map_runs = self._recorder.map_runs(sfn, arn, map_run_arns(execution.events))
        self._recorder.forget(arn)
        self._plans.pop(execution.name, None)
        return execution

    def _progress(self, sfn: Any, arn: str, on_progress: ProgressCallback) -> None:
        try:
            runs = sfn.list_map_runs(executionArn=arn)["mapRuns"]
        except Exception:  # moto answers only once the execution's interpreter is up
            return
        if runs:
            plans = self._plans.get(arn.rsplit(":", 1)[-1], [])
            plan = plans[len(runs) - 1] if len(plans) >= len(runs) else None
            on_progress(describe_map_run(sfn, runs[-1]["mapRunArn"]), plan)


class _Events:
    """The cancel events of the pipeline's pools, set, cleared and read as one."""

    def __init__(self, *events: Any) -> None:
        self.events = events

    def set(self) -> None:
        for event in self.events:
            event.set()

    def clear(self) -> None:
        for event in self.events:
            event.clear()

    def is_set(self) -> bool:
        return any(event.is_set() for event in self.events)


def function_name(name: str, step: str) -> str:
    """The function of ``step`` in the pipeline named ``name``."""
    return f"{name}-{step}"


def create_state_machine(name: str, **definition_options: Any) -> str:
    """In the moto that is active: a role, one function per step (`function_name`) and the
    deployed state machine definition over them (``<name>-pipeline``, `definition` with
    ``definition_options``); returns its ARN."""
    import boto3

    iam = boto3.client("iam", region_name=REGION)
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    role_arn = iam.create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument=json.dumps(trust))[
        "Role"
    ]["Arn"]
    lam = boto3.client("lambda", region_name=REGION)
    arns = {}
    for step in WORKFLOW:
        # The code is never run by moto (the local runner's seam runs the handler, a test's
        # moto answers canned results); a function must exist so that the state machine can
        # name it.
        arns[step.name] = lam.create_function(
            FunctionName=function_name(name, step.name),
            Runtime="python3.12",
            Role=role_arn,
            Handler=step.handler,
            Code={"ZipFile": _placeholder_zip()},
            Timeout=FUNCTION_TIMEOUT_SECONDS,
        )["FunctionArn"]
    sfn = boto3.client("stepfunctions", region_name=REGION)
    return sfn.create_state_machine(
        name=f"{name}-pipeline",
        definition=json.dumps(definition(arns, **definition_options)),
        roleArn=role_arn,
    )["stateMachineArn"]


def _placeholder_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("README.txt", "droughtwatch local runner: handlers run in-process\n")
    return buffer.getvalue()


@contextmanager
def _patched_environ(values: dict[str, str], remove: list[str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in [*values, *remove]}
    try:
        for k in remove:
            os.environ.pop(k, None)
        os.environ.update(values)
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
