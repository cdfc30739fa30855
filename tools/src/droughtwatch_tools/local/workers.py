"""The local Lambda service: each invocation runs in one of a pool of worker processes that stay
warm between invocations, as Lambda's containers do (a worker keeps its imports, its settings
and the model it loaded), so that the Map's children really run at once, each on its own
interpreter, instead of taking turns on one interpreter's lock.

A worker needs only the handlers' environment (the folder store, the DSN, the claim lock's key),
which each invocation carries, so that a changed variable reaches the next invocation as a
changed function configuration would (its settings are read again); never moto. The runner's
Ctrl-C sets an event that every worker's context reads as "no time left": the stage finishes
its file and claims no more. The workers ignore the terminal's Ctrl-C themselves (it would stop
them mid-file) and die with the runner's process (each watches its parent), so a killed run
leaves no worker holding a claim.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import multiprocessing
import os
import signal
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from droughtwatch_contract.settings import ENV_PREFIX, CommonSettings, env_name

# The variables an invocation carries to its worker: the handlers' settings and AWS's.
FORWARDED_PREFIXES = (ENV_PREFIX, "AWS_")
WORK_DIR = env_name(CommonSettings, "work_dir")
# How often a worker checks that the runner is still there.
PARENT_WATCH_SECONDS = 0.5
# A function error's type when the worker process itself died (as Lambda names an exited
# runtime).
WORKER_EXIT = "Runtime.ExitError"


def default_concurrency() -> int:
    """The CPUs this process may run on (the default of `local run --concurrency`)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_threads(concurrency: int) -> int:
    """The model's threads in each of ``concurrency`` workers: the CPUs shared out, at least
    one each, so that workers running Inference at once do not contend for the same cores (a
    Lambda function has its own vCPUs; local workers share this machine's)."""
    return max(1, default_concurrency() // max(1, concurrency))


def forwarded_environment() -> dict[str, str]:
    """This process's variables that an invocation carries to its worker."""
    return {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_PREFIXES)}


class LocalContext:
    """The part of Lambda's context object the handlers use."""

    def __init__(self, function_name: str, timeout_seconds: float, cancelled: Any) -> None:
        self.function_name = function_name
        self.aws_request_id = str(uuid.uuid4())
        self._deadline = time.monotonic() + timeout_seconds
        self._cancelled = cancelled

    def get_remaining_time_in_millis(self) -> int:
        # Ctrl-C in the runner reads as "no time left": the stage finishes the file in hand,
        # claims no more, and reports the rest as remaining for the next run.
        if self._cancelled is not None and self._cancelled.is_set():
            return 0
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass(frozen=True)
class Invocation:
    """One call of a function: its handler (``module.callable``), its event, the environment
    to run it in, and where its JSON log lines go (None: stderr)."""

    handler: str
    function_name: str
    event: Any
    environment: Mapping[str, str]
    timeout_seconds: float
    log_file: str | None = None
    crash: str | None = None  # a test's injected crash: raised in place of the handler


@dataclass(frozen=True)
class Outcome:
    """The function's answer: its JSON result, and whether it is an Unhandled function error
    (an exception the handler let out, or a worker that died)."""

    payload: bytes
    unhandled: bool = False


# -- in the worker ------------------------------------------------------------------------------

_cancelled: Any = None
_environment: dict[str, str] = {}
_log_file: str | None = None
_handlers: dict[str, Callable[..., Any]] = {}


def _start_worker(cancelled: Any, preload: tuple[str, ...] = (), niceness: int = 0) -> None:
    global _cancelled
    _cancelled = cancelled
    # The terminal's Ctrl-C reaches the whole process group: a worker finishes its file and
    # hears of the interrupt through ``cancelled``, from the runner.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if niceness:
        with contextlib.suppress(OSError):  # a system that refuses it: the default priority
            os.nice(niceness)
    threading.Thread(
        target=_die_with_parent, args=(os.getppid(),), name="parent-watch", daemon=True
    ).start()
    if preload:
        threading.Thread(target=_preload, args=(preload,), name="preload", daemon=True).start()


def _preload(modules: tuple[str, ...]) -> None:
    """Import ``modules`` (``module``, or ``module:function`` to call that function, without
    arguments, once imported) in the background while the worker takes its first invocations,
    as Lambda's provisioned concurrency initialises its environments before they are needed:
    the first Inference then finds torch loaded instead of paying its cold start. An invocation
    that needs a module still being imported waits for that import to finish (Python's module
    locks); one that fails here is left for the invocation that needs it to report."""
    for entry in modules:
        name, _, function = entry.partition(":")
        try:
            module = importlib.import_module(name)
            if function:
                getattr(module, function)()
        except Exception:  # the invocation that needs it says why
            continue


def _ready() -> int:
    return os.getpid()


def _die_with_parent(parent: int) -> None:
    """End this worker, mid-file if need be, once the runner's process is gone (kill -9
    included: the worker is then handed to another parent). Linux's parent-death signal would
    follow the thread that started the worker, which may be one of moto's short-lived ones."""
    while os.getppid() == parent:
        time.sleep(PARENT_WATCH_SECONDS)
    os._exit(1)


def _use_environment(environment: Mapping[str, str]) -> None:
    """Run with ``environment``'s variables, reading the settings again if they changed."""
    global _environment
    if dict(environment) == _environment:
        return
    for name in [k for k in os.environ if k.startswith(FORWARDED_PREFIXES)]:
        if name not in environment:
            del os.environ[name]
    os.environ.update(environment)
    if WORK_DIR in environment:
        # A scratch folder of its own, as each Lambda container has its own /tmp: two workers
        # fetching the same model must not write one file.
        os.environ[WORK_DIR] = os.path.join(environment[WORK_DIR], f"worker-{os.getpid()}")
    _environment = dict(environment)
    from droughtwatch_inference.handlers import common
    from droughtwatch_inference.runtime_settings import cached

    cached.cache_clear()
    common.reset_schema_checks()


def _use_log_file(path: str | None) -> None:
    global _log_file
    if path != _log_file and path is not None:
        from droughtwatch_inference import logs

        logs.to_file(path)
    _log_file = path


def _handler(path: str) -> Callable[..., Any]:
    if path not in _handlers:
        module, _, attr = path.rpartition(".")
        _handlers[path] = getattr(importlib.import_module(module), attr)
    return _handlers[path]


def _invoke(invocation: Invocation) -> Outcome:
    _use_environment(invocation.environment)
    _use_log_file(invocation.log_file)
    context = LocalContext(invocation.function_name, invocation.timeout_seconds, _cancelled)
    try:
        if invocation.crash is not None:
            raise RuntimeError(invocation.crash)
        result = _handler(invocation.handler)(invocation.event, context)
    except Exception as exc:
        # What Lambda does with an uncaught exception: an Unhandled function error.
        return Outcome(_error_payload(exc), unhandled=True)
    return Outcome(json.dumps(result, default=str).encode())


def _error_payload(exc: BaseException, error_type: str | None = None) -> bytes:
    return json.dumps(
        {
            "errorType": error_type or type(exc).__name__,
            "errorMessage": str(exc),
            "stackTrace": traceback.format_exception(exc)[-5:],
        }
    ).encode()


# -- in the runner ------------------------------------------------------------------------------


class WorkerPool:
    """``size`` warm worker processes (started by `start`, or as invocations first need them),
    and the event that tells them the run was cancelled. Invocations may come from many threads
    at once. ``preload``: what each worker imports in the background from its start
    (`_preload`); ``niceness``: how much lower than the runner's the workers' CPU priority is
    (0: the same)."""

    def __init__(self, size: int, preload: tuple[str, ...] = (), niceness: int = 0) -> None:
        if size < 1:
            raise ValueError(f"a pool needs at least one worker, not {size}")
        self.size = size
        self.preload = preload
        self.niceness = niceness
        # spawn, not fork: the runner has threads (moto's executions) that a fork would copy
        # mid-flight, locks held.
        self._context = multiprocessing.get_context("spawn")
        self.cancelled = self._context.Event()
        self._executor: ProcessPoolExecutor | None = None
        self._in_flight = 0
        self._in_flight_lock = threading.Lock()

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=self.size,
                mp_context=self._context,
                initializer=_start_worker,
                initargs=(self.cancelled, self.preload, self.niceness),
            )
        return self._executor

    def start(self) -> None:
        """Start every worker now, not when the first invocations need them, so that they
        start (and preload) while the runner sets up: one call each, not waited for (a
        worker not started yet takes one; started ones ignore it)."""
        executor = self._pool()
        if not _processes(executor):
            for _ in range(self.size):
                executor.submit(_ready)

    def invoke(self, invocation: Invocation) -> Outcome:
        executor = self._pool()
        with self._in_flight_lock:
            self._in_flight += 1
        try:
            return executor.submit(_invoke, invocation).result()
        except BrokenProcessPool as exc:
            # A worker died (killed, out of memory): its invocation failed as Lambda's does
            # when the runtime exits, and new workers take the next invocations.
            if self._executor is executor:
                self._executor = None
                executor.shutdown(wait=False, cancel_futures=True)
            return Outcome(_error_payload(exc, WORKER_EXIT), unhandled=True)
        finally:
            with self._in_flight_lock:
                self._in_flight -= 1

    @classmethod
    def shared(cls, size: int, preload: tuple[str, ...] = (), niceness: int = 0) -> WorkerPool:
        """The process's pool of ``size`` workers that preload ``preload`` at ``niceness``,
        made once and kept warm for every pipeline this process opens (the demo's days, a test
        session's pipelines), as Lambda keeps its containers between executions; closed when
        the process exits."""
        with _SHARED_LOCK:
            pool = _SHARED.get((size, preload, niceness))
            if pool is None:
                pool = cls(size, preload, niceness)
                _SHARED[pool._key] = pool
            return pool

    @property
    def _key(self) -> tuple[int, tuple[str, ...], int]:
        """What `shared` knows the pool by."""
        return (self.size, self.preload, self.niceness)

    def discard(self) -> None:
        """Stop the workers at once (a second Ctrl-C) and make the next `shared` a new pool."""
        with _SHARED_LOCK:
            if _SHARED.get(self._key) is self:
                del _SHARED[self._key]
        self.close(wait=False)

    def end_idle(self) -> bool:
        """At the process's exit: end the workers at once (SIGTERM) if none is running an
        invocation, and say whether it did. An idle worker holds no claim and has written its
        log lines, so nothing is lost, and the exit does not wait for each worker to unload
        torch and Evidently (about 2 s)."""
        with self._in_flight_lock:
            if self._in_flight:
                return False
            executor, self._executor = self._executor, None
        if executor is not None:
            for process in _processes(executor):
                process.terminate()
            executor.shutdown(wait=True, cancel_futures=True)
        return True

    def close(self, *, wait: bool = True) -> None:
        """Stop the workers: once their invocations end, or (``wait`` False: a second Ctrl-C)
        at once, mid-file; a later run takes such a file over."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        if not wait:
            for process in _processes(executor):
                process.kill()
        executor.shutdown(wait=wait, cancel_futures=True)


def _processes(executor: ProcessPoolExecutor) -> list[Any]:
    """The executor's worker processes: it keeps them privately and offers no way to start or
    stop them at once."""
    return list((getattr(executor, "_processes", None) or {}).values())


_SHARED: dict[tuple[int, tuple[str, ...], int], WorkerPool] = {}
_SHARED_LOCK = threading.Lock()


def _end_idle_shared() -> None:
    for pool in list(_SHARED.values()):
        pool.end_idle()


@atexit.register
def _close_shared() -> None:
    for pool in list(_SHARED.values()):
        pool.close()
    _SHARED.clear()


# concurrent.futures shuts its pools down, waiting for each worker to exit, in a hook that runs
# before atexit's; this one, registered after it, runs first (the hooks run newest first).
threading._register_atexit(_end_idle_shared)  # type: ignore[attr-defined]
