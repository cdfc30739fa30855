"""The local runner: the deployed state machine definition executed in-process by moto's Step
Functions interpreter, with each Lambda task dispatched to the real handler. The buckets are
folders under ``LocalConfig.store_root`` (``adapters.folder_store``), shared by every local process
at once, as S3 is by Lambdas; moto keeps only the state machine, the functions and their role.

Each pipeline holds a claim lock (`adapters.ledger.hold_claim_lock`) on a connection of its own
for as long as it is open, and the stages record its key on every file they claim: when the
process dies (kill -9, a crash), PostgreSQL drops the lock with the connection, and the next
local run takes the dead run's files over at once, while a live run's files stay its own. So
the lease keeps the settings' default, as on AWS: it only bounds a run that hangs.

The one seam is `_dispatch`, which replaces moto's simple Lambda backend's `invoke` (it would
answer a canned string) with a call of the handler that the function's name selects. It keeps
Lambda's contract: the payload in, the JSON result out, an uncaught exception as an
``Unhandled`` function error, and injected service errors as the API errors Step Functions
retries. moto is pinned to a tested range in pyproject.toml because this seam names its
internals.
"""

from __future__ import annotations

import importlib
import io
import json
import logging
import os
import threading
import time
import traceback
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

from droughtwatch_contract.settings import CommonSettings, InferenceSettings, env_name
from droughtwatch_contract.stages import STAGES
from droughtwatch_contract.statemachine import definition
from droughtwatch_inference.adapters.folder_store import FolderStore

from droughtwatch_tools.execution import TERMINAL, Execution, execution_name, read_execution

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

    def function_name(self, stage: str) -> str:
        return function_name(self.name, stage)

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


class LocalContext:
    """The part of Lambda's context object the handlers use."""

    def __init__(
        self, function_name: str, timeout_seconds: float, cancelled: threading.Event | None = None
    ) -> None:
        self.function_name = function_name
        self.aws_request_id = str(uuid.uuid4())
        self._deadline = time.monotonic() + timeout_seconds
        self._cancelled = cancelled or threading.Event()

    def get_remaining_time_in_millis(self) -> int:
        # Ctrl-C in the runner reads as "no time left": the stage finishes the file in hand,
        # claims no more, and reports the rest as remaining for the next run.
        if self._cancelled.is_set():
            return 0
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class LocalPipeline:
    """The pipeline's bucket folders, and moto with its functions and state machine and the seam
    installed. Use as a context manager; `run()` executes the state machine once."""

    def __init__(self, config: LocalConfig) -> None:
        self.config = config
        self.store = FolderStore(config.store_root)
        self.faults: dict[str, list[str]] = {}
        self.invocations: list[tuple[str, float]] = []
        self._stack: ExitStack | None = None
        self._handlers: dict[str, Callable[..., Any]] = {}
        self.state_machine_arn = ""
        self.cancelled = threading.Event()
        self.claim_lock: int | None = None

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
        from droughtwatch_inference.handlers import common
        from droughtwatch_inference.runtime_settings import cached
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
        cleared = [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL") or k == "AWS_PROFILE"]
        stack.enter_context(_patched_environ(env, cleared))
        cached.cache_clear()
        common.reset_schema_checks()
        stack.callback(cached.cache_clear)
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
        # moto's interpreter logs every caught task error with its whole state; the execution
        # history holds the same facts in the form users read.
        moto_log = logging.getLogger("moto.stepfunctions")
        level = moto_log.level
        moto_log.setLevel(logging.CRITICAL)
        stack.callback(moto_log.setLevel, level)
        self._create_resources()

    def __exit__(self, *exc: object) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None

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
        self.state_machine_arn = create_state_machine(self.config.name)

    # -- the seam -------------------------------------------------------------------------------
    def _stage_of(self, function_name: str) -> str:
        name = (
            function_name.rsplit(":", 1)[-1] if function_name.startswith("arn:") else function_name
        )
        for stage in STAGES.names:
            if name == self.config.function_name(stage):
                return stage
        raise KeyError(f"no droughtwatch handler for function {function_name!r}")

    def _handler(self, stage: str) -> Callable[..., Any]:
        if stage not in self._handlers:
            module, _, attr = STAGES[stage].handler.rpartition(".")
            self._handlers[stage] = getattr(importlib.import_module(module), attr)
        return self._handlers[stage]

    def _dispatch(self, function_name: str, body: Any, response_headers: dict[str, str]) -> bytes:
        from moto.core.exceptions import JsonRESTError

        stage = self._stage_of(function_name)
        pending = self.faults.get(stage)
        if pending:
            code = pending.pop(0)
            raise JsonRESTError(code, f"injected Lambda service error for {stage}")
        event = json.loads(body) if body else {}
        started = time.monotonic()
        try:
            result = self._handler(stage)(
                event,
                LocalContext(
                    self.config.function_name(stage), FUNCTION_TIMEOUT_SECONDS, self.cancelled
                ),
            )
        except Exception as exc:
            # What Lambda does with an uncaught exception: an Unhandled function error.
            response_headers["x-amz-function-error"] = "Unhandled"
            result = {
                "errorType": type(exc).__name__,
                "errorMessage": str(exc),
                "stackTrace": traceback.format_exception(exc)[-5:],
            }
        finally:
            self.invocations.append((stage, time.monotonic() - started))
        return json.dumps(result, default=str).encode()

    def inject_service_error(
        self, stage: str, code: str = "TooManyRequestsException", times: int = 1
    ) -> None:
        """Make the next ``times`` invocations of ``stage`` fail as the Lambda API would."""
        self.faults.setdefault(stage, []).extend([code] * times)

    # -- running --------------------------------------------------------------------------------
    def run(
        self,
        payload: dict[str, Any] | None = None,
        *,
        name: str | None = None,
        timeout_seconds: float = 3600,
    ) -> Execution:
        """Execute the state machine once and wait for its end. Past ``timeout_seconds``, or
        at the first Ctrl-C, the running stage is told it has no time left: it finishes its
        current file and stops (a second Ctrl-C leaves at once)."""
        import boto3

        sfn = boto3.client("stepfunctions", region_name=REGION)
        name = name or execution_name(LOCAL_TRIGGER)
        started = time.monotonic()
        arn = sfn.start_execution(
            stateMachineArn=self.state_machine_arn,
            name=name,
            input=json.dumps(payload or {"trigger": LOCAL_TRIGGER}),
        )["executionArn"]
        self.cancelled.clear()
        while True:
            try:
                if sfn.describe_execution(executionArn=arn)["status"] in TERMINAL:
                    break
                if time.monotonic() - started > timeout_seconds:
                    self.cancelled.set()
                time.sleep(0.05)
            except KeyboardInterrupt:
                if self.cancelled.is_set():
                    raise  # a second Ctrl-C: leave now; a later run takes the file over
                # The first Ctrl-C: let the running stage finish its current file and stop.
                self.cancelled.set()
        return read_execution(sfn, arn)


def function_name(name: str, stage: str) -> str:
    """The function of ``stage`` in the pipeline named ``name``."""
    return f"{name}-{stage}"


def create_state_machine(name: str, **definition_options: Any) -> str:
    """In the moto that is active: a role, one function per stage (`function_name`) and the
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
    for stage in STAGES.names:
        # The code is never run by moto (the local runner's seam runs the handler, a test's
        # moto answers canned results); a function must exist so that the state machine can
        # name it.
        arns[stage] = lam.create_function(
            FunctionName=function_name(name, stage),
            Runtime="python3.12",
            Role=role_arn,
            Handler=STAGES[stage].handler,
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
