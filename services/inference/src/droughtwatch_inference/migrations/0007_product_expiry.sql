-- Products expire: on a deployed stack, S3 lifecycle rules delete processed files after
-- processed_retention_days and per-file HTML reports after report_retention_days (both stack
-- settings; predictions and the day's reports are kept). The stage that writes a product
-- records when it expires, from the same setting the rule is made of, so that the dashboard
-- and `local run` show an expired product as expired rather than missing, and Inference
-- tells an expired processed file from a lost one. NULL: the product is kept.

ALTER TABLE ledger
    ADD COLUMN processed_expires_at timestamptz,
    ADD COLUMN report_expires_at    timestamptz;
