"""Fixtures shared by every test folder: a real PostgreSQL (embedded, started once per session,
or the server at DROUGHTWATCH_TEST_DSN), a fresh migrated database per test, moto for AWS, the
DROUGHTWATCH_* environment of the handlers, and model files (tiny ONNX graphs written with
onnx.helper, and a small BaselineCNN trained once per session with its exports in both formats
and both layouts). infra's tests run in an environment with infra's dependencies alone, so
third-party imports happen inside the fixtures."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from droughtwatch_contract.database import APP_USER, GRAFANA_USER
from droughtwatch_contract.settings import (
    ENV_PREFIX,
    CommonSettings,
    DatabaseSettings,
    InferenceSettings,
    env_name,
)

REPO = Path(__file__).resolve().parent
SHARD = REPO.parent / "shared" / "data" / "droughtwatch" / "part-r-00012"
DATA_BUCKET = "dw-test-data"
MODEL_BUCKET = "dw-test-models"
TEMPLATE_DB = "dw_template"
# Where the tests' model bucket holds the model: Inference's default prefix.
MODEL_PREFIX: str = InferenceSettings.model_fields["model_prefix"].default
# Your own PostgreSQL for the tests, instead of the embedded server (the tests' own variable).
TEST_DSN_VARIABLE = f"{ENV_PREFIX}TEST_DSN"


@pytest.fixture(autouse=True)
def printer_follows_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command's consoles as a user's are: following COLUMNS at each print. rich fixes a
    console's width when COLUMNS is set at its making, and xdist's workers start with
    COLUMNS=80, so a test that sets a width would get 80 there. (Not imported: nothing to do;
    infra's tests run without the tools.)"""
    monkeypatch.delenv("COLUMNS", raising=False)
    printer = sys.modules.get("droughtwatch_tools.printer")
    if printer is not None:
        from rich.console import Console

        monkeypatch.setattr(printer, "console", Console())
        monkeypatch.setattr(printer, "err", Console(stderr=True))


@pytest.fixture(scope="session")
def shard_path() -> Path:
    if not SHARD.exists():
        pytest.skip(f"real droughtwatch shard not found at {SHARD} (CI always has it)")
    return SHARD


class Postgres:
    """A server we may create databases on."""

    def __init__(self, admin_dsn: str) -> None:
        self.admin_dsn = admin_dsn
        self.passwords: dict[str, str] = {}

    def dsn(self, database: str, role: str | None = None) -> str:
        """The database as the admin, or as one of the pipeline's roles (see migration 0003)."""
        from psycopg.conninfo import make_conninfo

        if role is None:
            return make_conninfo(self.admin_dsn, dbname=database)
        return make_conninfo(
            self.admin_dsn, dbname=database, user=role, password=self.passwords[role]
        )

    def set_role_passwords(self) -> None:
        """Give the roles the migrations created a password for this session (roles belong to
        the server, so this holds for every database)."""
        import secrets

        import psycopg
        from psycopg import sql

        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            for role in (APP_USER, GRAFANA_USER):
                self.passwords[role] = secrets.token_urlsafe(18)
                conn.execute(
                    sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                        sql.Identifier(role), sql.Literal(self.passwords[role])
                    )
                )

    def create(self, name: str, template: str | None = None) -> str:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
            if template:
                query += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
            conn.execute(query)
        return self.dsn(name)

    def drop(self, name: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    external = os.environ.get(TEST_DSN_VARIABLE)
    if external:
        server = Postgres(external)
        yield server
        return
    from droughtwatch_tools.local.postgres import EmbeddedPostgres

    # Not under pytest's temp folder: the server runs as another user when we are root, and a
    # second pytest session resets that folder's permissions to 0700 under the running server.
    root = Path(tempfile.mkdtemp(prefix="droughtwatch-test-pg-"))
    embedded = EmbeddedPostgres(root, preferred_port=0)
    embedded.start()
    server = Postgres(embedded.dsn("postgres"))
    try:
        yield server
    finally:
        embedded.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def migrated_template(postgres: Postgres) -> str:
    """A database with the project's schema, copied for each test (fast: CREATE ... TEMPLATE)."""
    from droughtwatch_tools.local.database import migrate_dsn

    name = f"{TEMPLATE_DB}_{uuid.uuid4().hex[:8]}"
    migrate_dsn(postgres.create(name))
    postgres.set_role_passwords()
    return name


@pytest.fixture
def test_database(postgres: Postgres, migrated_template: str) -> Iterator[str]:
    """A fresh migrated database, by name."""
    name = f"dw_test_{uuid.uuid4().hex[:12]}"
    postgres.create(name, template=migrated_template)
    yield name
    postgres.drop(name)


@pytest.fixture(scope="session")
def baseline():
    """The demo's baseline (training.Trained: model, manifest, metrics, reference summaries),
    trained once per session."""
    from droughtwatch_tools import training

    return training.train_baseline(seed=training.BASELINE_SEED)


@pytest.fixture
def database_dsn(postgres: Postgres, test_database: str) -> str:
    """The fresh database as the stages see it: the droughtwatch_app role, no DDL rights."""
    return postgres.dsn(test_database, APP_USER)


@pytest.fixture
def admin_dsn(postgres: Postgres, test_database: str) -> str:
    """The same database as its owner (migrations, DDL)."""
    return postgres.dsn(test_database)


@pytest.fixture
def grafana_dsn(postgres: Postgres, test_database: str) -> str:
    """The same database as Grafana's read-only role."""
    return postgres.dsn(test_database, GRAFANA_USER)


@pytest.fixture
def stored_model(tmp_path: Path, baseline, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The baseline model in the local model bucket of DROUGHTWATCH_HOME ``tmp_path/home``, as
    a first `local run` would train it; returns its model.json."""
    from droughtwatch_inference.adapters.folder_store import FolderStore
    from droughtwatch_tools import training
    from droughtwatch_tools.local.runner import LocalConfig
    from droughtwatch_tools.local.state import STORE_ROOT_VARIABLE, store_root

    monkeypatch.delenv(STORE_ROOT_VARIABLE, raising=False)  # the store is in the home
    home = tmp_path / "home"
    config = LocalConfig(database_dsn="", work_dir=home / "work", store_root=store_root(home))
    store = FolderStore(config.store_root)
    store.create_bucket(config.model_bucket)
    training.publish_trained(store, config.model_bucket, config.model_prefix, baseline)
    return store.path(config.model_bucket, f"{config.model_prefix}model.json")


@pytest.fixture
def raw_scenes(tmp_path: Path) -> Callable[[int, int], Path]:
    """Writes ``count`` generated raw files of ``images`` normal-weather images each,
    ``scene-<i>.tfrecord`` (seeded by i), into ``tmp_path/incoming``: a folder for `local run`."""

    def write(count: int, images: int) -> Path:
        import numpy as np
        from droughtwatch_tools import synthetic

        folder = tmp_path / "incoming"
        folder.mkdir(exist_ok=True)
        for i in range(count):
            synthetic.write_raw_file(
                folder / f"scene-{i}.tfrecord", np.random.default_rng(i), images, drought=0.0
            )
        return folder

    return write


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and region, and no endpoint override (it would bypass moto)."""
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL") or name in {"AWS_PROFILE", "AWS_DEFAULT_PROFILE"}:
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")


@pytest.fixture
def s3(aws_env: None) -> Iterator[object]:
    """moto S3 with the data and model buckets; yields an S3 client."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("s3", region_name="eu-west-1")
        for bucket in (DATA_BUCKET, MODEL_BUCKET):
            client.create_bucket(
                Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
            )
        yield client


@pytest.fixture
def no_settings_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No DROUGHTWATCH_* variable from the shell that started the tests (the tests' own DSN
    stays): each test sets what it needs."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX) and name != TEST_DSN_VARIABLE:
            monkeypatch.delenv(name)


@pytest.fixture
def service_env(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    database_dsn: str,
    s3: object,
    no_settings_env: None,
) -> Iterator[dict[str, str]]:
    """The handlers' DROUGHTWATCH_* environment against moto and a fresh database."""
    from droughtwatch_inference.handlers import common
    from droughtwatch_inference.runtime_settings import cached

    env = {
        env_name(CommonSettings, "data_bucket"): DATA_BUCKET,
        env_name(InferenceSettings, "model_bucket"): MODEL_BUCKET,
        env_name(InferenceSettings, "model_prefix"): MODEL_PREFIX,
        env_name(DatabaseSettings, "database_dsn"): database_dsn,
        env_name(CommonSettings, "work_dir"): str(tmp_path / "work"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    cached.cache_clear()
    common.reset_schema_checks()
    yield env
    cached.cache_clear()
    common.reset_schema_checks()


def _rewrite_processed(source: Path, dest: Path, *, version_1: bool) -> Path:
    """Copy a processed file, rewriting it as format version 1 wrote it (``version_1``: the
    indices stored as float32 members beside the bands) or as a version 2 file that holds
    the bands only (no computed channels)."""
    import io
    import json
    import zipfile

    import numpy as np
    from droughtwatch_preprocess import BANDS, INDICES, compute_indices

    def npy(array: np.ndarray) -> bytes:
        buf = io.BytesIO()
        np.save(buf, array)
        return buf.getvalue()

    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(dest, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if version_1 and item.filename.endswith("/bands.npy"):
                indices = compute_indices(np.load(io.BytesIO(data)))
                zout.writestr(item.filename.replace("/bands.npy", "/indices.npy"), npy(indices))
            if item.filename == "meta.npy":
                meta = json.loads(str(np.load(io.BytesIO(data))[()]))
                if version_1:
                    meta["version"] = 1
                    meta["stored"]["indices"] = list(INDICES)
                    del meta["computed"]
                else:
                    meta["computed"] = []
                    meta["channels"] = list(BANDS)
                data = npy(np.array(json.dumps(meta), dtype=np.str_))
            zout.writestr(item, data)
    return dest


@pytest.fixture
def as_version_1():
    """Rewrites a processed file as format version 1 wrote it (an older preprocess's output)."""
    return lambda source, dest: _rewrite_processed(source, dest, version_1=True)


@pytest.fixture
def bands_only():
    """Rewrites a processed file as one that holds the bands only (no index channels)."""
    return lambda source, dest: _rewrite_processed(source, dest, version_1=False)


# Model files
CLASSES = ("0", "1", "2", "3+")
CHANNELS = ("B4", "B5", "B6", "NDVI")
SHARES = {"0": 0.4, "1": 0.3, "2": 0.2, "3+": 0.1}


def build_tiny_onnx(
    *,
    channels: int = 4,
    classes: int = 4,
    layout: str = "NCHW",
    probabilities: bool = False,
    nan: bool = False,
    batch: int | str = "N",
    size: int = 65,
    extra_input: str | None = None,
) -> bytes:
    """An ONNX model: each channel's mean over the image, times a fixed matrix (C x K), plus
    optionally a softmax, a NaN, or a second required input added to the means."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    shape = [batch, channels, size, size] if layout == "NCHW" else [batch, size, size, channels]
    axes = [2, 3] if layout == "NCHW" else [1, 2]
    weights = np.linspace(-2, 2, channels * classes, dtype=np.float32).reshape(channels, classes)
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["means"], axes=axes, keepdims=0),
        helper.make_node("MatMul", ["means" if extra_input is None else "fed", "W"], ["scores"]),
    ]
    inputs = [helper.make_tensor_value_info("images", TensorProto.FLOAT, shape)]
    if extra_input is not None:
        inputs.append(helper.make_tensor_value_info(extra_input, TensorProto.FLOAT, [channels]))
        nodes.insert(1, helper.make_node("Add", ["means", extra_input], ["fed"]))
    initializers = [numpy_helper.from_array(weights, "W")]
    last = "scores"
    if nan:
        initializers.append(numpy_helper.from_array(np.array([np.nan], np.float32), "nan"))
        nodes.append(helper.make_node("Mul", [last, "nan"], ["with_nan"]))
        last = "with_nan"
    if probabilities:
        nodes.append(helper.make_node("Softmax", [last], ["softmax"], axis=1))
        last = "softmax"
    nodes.append(helper.make_node("Identity", [last], ["out"]))
    graph = helper.make_graph(
        nodes,
        "tiny",
        inputs,
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [batch, classes])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model.SerializeToString()


def manifest_values(**changes: Any) -> dict[str, Any]:
    return {
        "name": "tiny",
        "version": "v1",
        "format": "onnx",
        "channels": list(CHANNELS),
        "classes": list(CLASSES),
        "reference_class_shares": SHARES,
        **changes,
    }


def write_model(folder: Path, weights: dict[str, bytes], **manifest: Any) -> Path:
    """A model folder: model.json (manifest_values with ``manifest``'s changes; a value None
    removes the key) and the weight files."""
    folder.mkdir(parents=True, exist_ok=True)
    values = {k: v for k, v in manifest_values(**manifest).items() if v is not None}
    (folder / "model.json").write_text(json.dumps(values, indent=2))
    for name, body in weights.items():
        (folder / name).write_bytes(body)
    return folder


@pytest.fixture
def tiny_onnx() -> Callable[..., bytes]:
    """build_tiny_onnx, for the tests to call with their own shapes."""
    return build_tiny_onnx


@pytest.fixture
def model_folder(tmp_path: Path) -> Callable[..., Path]:
    """write_model into a fresh folder under tmp_path."""
    count = iter(range(1_000_000))

    def make(weights: dict[str, bytes] | None = None, **manifest: Any) -> Path:
        if weights is None:
            weights = {"model.onnx": build_tiny_onnx()}
        return write_model(tmp_path / f"model-{next(count)}", weights, **manifest)

    return make


@pytest.fixture(scope="session")
def baseline_exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A small BaselineCNN (trained once per session) exported three ways: model.pt2 and
    model.onnx taking N x C x 65 x 65 and giving logits, keras.onnx taking N x 65 x 65 x C and
    giving probabilities (what tf2onnx makes of a Keras classifier)."""
    from droughtwatch_tools import baseline_cnn, training

    model, manifest, _, _ = training.train_baseline(
        seed=1, train_images=300, holdout_images=200, epochs=1
    )
    out = tmp_path_factory.mktemp("baseline")
    return {
        "model": model,
        "manifest": manifest,
        "model.pt2": baseline_cnn.export_torch(model, out / "model.pt2"),
        "model.onnx": baseline_cnn.export_onnx(model, out / "model.onnx"),
        "keras.onnx": baseline_cnn.export_onnx(
            model, out / "keras.onnx", layout="NHWC", probabilities=True
        ),
    }


class ResumingProxy:
    """A TCP proxy on 127.0.0.1 in front of a real server that behaves like a paused Aurora
    cluster resuming: the next ``pause(n)`` connections are accepted and dropped at once (the
    client sees its connection refused or closed), every later one is forwarded."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.to_drop = 0
        self.dropped = 0
        self.forwarded = 0
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._closed = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def pause(self, connections: int) -> None:
        with self._lock:
            self.to_drop = connections

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                drop = self.to_drop > 0
                if drop:
                    self.to_drop -= 1
                    self.dropped += 1
                else:
                    self.forwarded += 1
            if drop:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                thread = threading.Thread(target=self._pump, args=(source, sink), daemon=True)
                self._threads.append(thread)
                thread.start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._closed.set()
        self.listener.close()
        with self._lock:
            for sock in self._sockets:
                sock.close()
        for thread in self._threads:
            thread.join(timeout=5)


@pytest.fixture
def resuming_proxy() -> Iterator[Callable[[str], tuple[str, ResumingProxy]]]:
    """``through(dsn)`` -> (the same DSN through a ResumingProxy, the proxy)."""
    proxies: list[ResumingProxy] = []

    def through(dsn: str) -> tuple[str, ResumingProxy]:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        info = conninfo_to_dict(dsn)
        proxy = ResumingProxy(str(info.get("host") or "127.0.0.1"), int(info.get("port") or 5432))
        proxies.append(proxy)
        return make_conninfo(dsn, host="127.0.0.1", port=proxy.port), proxy

    yield through
    for proxy in proxies:
        proxy.close()


@pytest.fixture
def droughtwatch_log() -> Iterator[list[str]]:
    """The service's JSON log lines (logger ``droughtwatch``) written during the test, however
    earlier tests left that logger's handlers and propagation."""
    import logging

    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger = logging.getLogger("droughtwatch")
    handler = Collect(logging.DEBUG)
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
