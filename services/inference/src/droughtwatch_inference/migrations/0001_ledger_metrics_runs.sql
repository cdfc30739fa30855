-- The ledger (one row per raw object version and where it is in the pipeline), the metrics
-- of each predictions file, and one row per stage invocation.

CREATE TABLE ledger (
    id               bigserial PRIMARY KEY,
    bucket           text        NOT NULL,
    raw_key          text        NOT NULL,
    etag             text        NOT NULL,
    size_bytes       bigint      NOT NULL CHECK (size_bytes >= 0),
    batch_date       date        NOT NULL,
    registered_at    timestamptz NOT NULL DEFAULT now(),
    registered_run   text,
    -- the next stage this file needs, and how that stage went
    stage            text        NOT NULL DEFAULT 'processing'
                     CHECK (stage IN ('processing', 'inference', 'observe', 'done')),
    status           text        NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'running', 'failed', 'done')),
    attempts         integer     NOT NULL DEFAULT 0,
    lease_until      timestamptz,
    last_error       text,
    last_error_at    timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    -- processing
    source_digest    text,
    processed_key    text,
    processed_at     timestamptz,
    records          integer,
    images           integer,
    dropped          integer,
    -- inference
    predictions_key  text,
    predicted_at     timestamptz,
    predicted_images integer,
    model_name       text,
    model_version    text,
    -- observe
    report_key       text,
    observed_at      timestamptz,
    UNIQUE (bucket, raw_key, etag)
);

CREATE INDEX ledger_claim_idx ON ledger (stage, status, registered_at);

CREATE TABLE metrics (
    id                bigserial PRIMARY KEY,
    ledger_id         bigint      NOT NULL REFERENCES ledger (id),
    predictions_key   text        NOT NULL UNIQUE,
    report_key        text,
    batch_date        date        NOT NULL,
    computed_at       timestamptz NOT NULL DEFAULT now(),
    run_id            text,
    model_name        text        NOT NULL,
    model_version     text        NOT NULL,
    images            integer     NOT NULL CHECK (images >= 0),
    class_counts      jsonb       NOT NULL,
    class_shares      jsonb       NOT NULL,
    most_common_class text,
    most_common_share double precision,
    missing_share     double precision NOT NULL,
    drift_score       double precision,
    drift_method      text        NOT NULL,
    drift_threshold   double precision NOT NULL,
    drift_detected    boolean     NOT NULL
);

CREATE INDEX metrics_batch_date_idx ON metrics (batch_date);

CREATE TABLE runs (
    id            bigserial PRIMARY KEY,
    run_id        text        NOT NULL,
    stage         text        NOT NULL CHECK (stage IN ('processing', 'inference', 'observe')),
    started_at    timestamptz NOT NULL,
    finished_at   timestamptz NOT NULL DEFAULT now(),
    status        text        NOT NULL CHECK (status IN ('succeeded', 'failed')),
    files_done    integer     NOT NULL DEFAULT 0,
    files_failed  integer     NOT NULL DEFAULT 0,
    images        integer     NOT NULL DEFAULT 0,
    dropped       integer     NOT NULL DEFAULT 0,
    remaining     integer     NOT NULL DEFAULT 0,
    error         text
);

CREATE INDEX runs_started_at_idx ON runs (started_at);
