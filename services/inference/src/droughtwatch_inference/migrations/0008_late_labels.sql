-- Ground truth that arrives later: label files that users upload under labels/ in the data
-- bucket (CSV or Parquet, columns id,label), each ingested once by the first step of a run, and
-- one label per image id, which a later upload may replace. Observe merges these labels by id
-- into the predictions of each day they match and recomputes that day's model quality.
--
-- Which day an image belongs to needs no per-image table: an image id is the first 20 hex
-- digits of its raw file's SHA-256, '-', the record's index (droughtwatch_preprocess.ids), so
-- left(image_id, 20) joins ledger.source_digest of the file that holds it.

-- One row per label object version (bucket, key, ETag), as the ledger has one per raw object
-- version: a re-upload of the same bytes is the same version and is not read again; new bytes
-- under the same key are a new version, read again.
CREATE TABLE label_files (
    id           bigserial   PRIMARY KEY,
    bucket       text        NOT NULL,
    key          text        NOT NULL,
    etag         text        NOT NULL,
    size_bytes   bigint      NOT NULL CHECK (size_bytes >= 0),
    run_id       text,
    ingested_at  timestamptz NOT NULL DEFAULT now(),
    -- ingested: every row loaded in one transaction; failed: refused whole, nothing loaded
    status       text        NOT NULL CHECK (status IN ('ingested', 'failed')),
    label_rows   integer     CHECK (label_rows >= 0),   -- distinct ids in the file
    new_labels   integer     CHECK (new_labels >= 0),   -- ids labelled for the first time
    replaced     integer     CHECK (replaced >= 0),     -- ids whose label this file changed
    unchanged    integer     CHECK (unchanged >= 0),    -- ids that held this label already
    -- ids that match no predicted image yet: kept, and matched when their predictions come
    unknown_ids  integer     CHECK (unknown_ids >= 0),
    error        text,                                  -- why a failed file was refused
    UNIQUE (bucket, key, etag)
);

-- Each label write takes the next number, so a daily row can record the newest label it pooled
-- (daily_metrics.last_label_seq) and a day is stale when a newer one matches its images.
CREATE SEQUENCE labels_seq;

CREATE TABLE labels (
    image_id             text        PRIMARY KEY,
    label                text        NOT NULL,  -- a class name (raw integers mapped on ingest)
    source_key           text        NOT NULL,  -- the label file (label_files.key, etag)
    source_etag          text        NOT NULL,
    received_at          timestamptz NOT NULL DEFAULT now(),
    seq                  bigint      NOT NULL DEFAULT nextval('labels_seq'),
    -- what a later upload replaced: the label before it, its file and when it had come
    previous_label       text,
    previous_source_key  text,
    previous_received_at timestamptz
);

-- a day's labels: by the digest prefix of its files, newest first
CREATE INDEX labels_digest_idx ON labels (left(image_id, 20), seq);
-- labels to their files: ids that match no predicted file are counted as unknown
CREATE INDEX ledger_digest_prefix_idx ON ledger (left(source_digest, 20))
    WHERE source_digest IS NOT NULL;

-- Where a day's labels came from: the raw records (embedded) or label files (late; a late
-- label overrides an embedded one), the newest late label pooled, and when it had arrived.
ALTER TABLE daily_metrics
    ADD COLUMN embedded_labels      integer NOT NULL DEFAULT 0 CHECK (embedded_labels >= 0),
    ADD COLUMN late_labels          integer NOT NULL DEFAULT 0 CHECK (late_labels >= 0),
    ADD COLUMN late_label_overrides integer NOT NULL DEFAULT 0 CHECK (late_label_overrides >= 0),
    ADD COLUMN last_label_seq       bigint,
    ADD COLUMN labels_received_at   timestamptz;

-- the days pooled before late labels existed: every label they pooled was embedded
UPDATE daily_metrics SET embedded_labels = coalesce(labelled_images, 0);

GRANT SELECT, INSERT, UPDATE ON label_files, labels TO droughtwatch_app;
GRANT USAGE ON SEQUENCE label_files_id_seq, labels_seq TO droughtwatch_app;
GRANT SELECT ON label_files, labels TO droughtwatch_grafana;
