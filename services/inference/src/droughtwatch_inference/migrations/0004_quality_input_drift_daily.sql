-- Observe watches more than the predicted classes: model quality when the images carry labels,
-- input drift of the per-image summaries, data quality, per predictions file (metrics) and per
-- day and model version (daily_metrics, which the dashboard and the alerts read).
--
-- The day is its own table rather than a `kind` column on metrics: a metrics row belongs to one
-- ledger row and one predictions file (both NOT NULL, the file UNIQUE), a day has neither but
-- has a key of its own (batch_date, model_name, model_version) and is recomputed as its files
-- arrive, so each table keeps its constraints and every query says which unit it reads.

ALTER TABLE metrics
    -- model quality, on the images that carry a label (NULL when none does; see notes)
    ADD COLUMN labelled_images         integer CHECK (labelled_images >= 0),
    ADD COLUMN accuracy                double precision,
    ADD COLUMN macro_f1                double precision,
    ADD COLUMN per_class               jsonb,  -- {class: {precision, recall, support}}
    ADD COLUMN confusion               jsonb,  -- {true class: {predicted class: images}}
    ADD COLUMN reference_accuracy      double precision,
    ADD COLUMN accuracy_drop           double precision,  -- reference_accuracy - accuracy
    ADD COLUMN accuracy_margin         double precision,
    ADD COLUMN accuracy_alert          boolean,
    -- input drift of the per-image summaries against the model's reference summaries
    ADD COLUMN feature_drift           jsonb,  -- {column: score}
    ADD COLUMN drifted_features        integer,
    ADD COLUMN feature_drift_share     double precision,
    ADD COLUMN feature_drift_method    text,
    ADD COLUMN feature_drift_threshold double precision,
    ADD COLUMN input_drift_detected    boolean,
    -- data quality
    ADD COLUMN records                 integer,
    ADD COLUMN dropped_blank           integer,
    ADD COLUMN blank_share             double precision,  -- dropped_blank / records
    ADD COLUMN missing_label_share     double precision,
    ADD COLUMN zero_share              jsonb,  -- {band: share of its pixels at 0}
    ADD COLUMN saturated_share         jsonb,  -- {band: share of its pixels at 255}
    ADD COLUMN nonfinite_share         jsonb,  -- {index: share of its pixels not finite}
    -- why a signal is missing (no labels, no reference summaries): not errors
    ADD COLUMN notes                   jsonb NOT NULL DEFAULT '[]';

CREATE TABLE daily_metrics (
    batch_date              date        NOT NULL,
    model_name              text        NOT NULL,
    model_version           text        NOT NULL,
    computed_at             timestamptz NOT NULL DEFAULT now(),
    run_id                  text,
    files                   integer     NOT NULL CHECK (files >= 0),
    -- the newest metrics row pooled: a newer one of the same day and model makes the row stale
    last_metrics_id         bigint      NOT NULL,
    report_key              text,
    images                  integer     NOT NULL CHECK (images >= 0),
    -- below min_images the day is "not enough data": no alert fires for it
    min_images              integer     NOT NULL,
    enough_data             boolean     NOT NULL,
    class_counts            jsonb       NOT NULL,
    class_shares            jsonb       NOT NULL,
    most_common_class       text,
    most_common_share       double precision,
    missing_share           double precision NOT NULL,
    drift_score             double precision,
    drift_method            text        NOT NULL,
    drift_threshold         double precision NOT NULL,
    drift_detected          boolean     NOT NULL,
    labelled_images         integer CHECK (labelled_images >= 0),
    accuracy                double precision,
    macro_f1                double precision,
    per_class               jsonb,
    confusion               jsonb,
    reference_accuracy      double precision,
    accuracy_drop           double precision,
    accuracy_margin         double precision,
    accuracy_alert          boolean,
    feature_drift           jsonb,
    drifted_features        integer,
    feature_drift_share     double precision,
    feature_drift_method    text,
    feature_drift_threshold double precision,
    input_drift_detected    boolean,
    records                 integer,
    dropped_blank           integer,
    blank_share             double precision,
    missing_label_share     double precision,
    zero_share              jsonb,
    saturated_share         jsonb,
    nonfinite_share         jsonb,
    notes                   jsonb       NOT NULL DEFAULT '[]',
    PRIMARY KEY (batch_date, model_name, model_version)
);

CREATE INDEX metrics_day_idx ON metrics (batch_date, model_name, model_version, id);

GRANT SELECT, INSERT, UPDATE ON daily_metrics TO droughtwatch_app;
GRANT SELECT ON daily_metrics TO droughtwatch_grafana;
