-- Every raw object gets an outcome a user can read: besides done and failed, a file can be
-- skipped (clearly not a TFRecord: text, an image, random bytes), a duplicate (its content was
-- already processed under another key: not predicted or counted again) or superseded (a newer
-- version of the same key was uploaded: the old row keeps its history and leaves the failed
-- files).

ALTER TABLE ledger DROP CONSTRAINT ledger_status_check;
ALTER TABLE ledger ADD CONSTRAINT ledger_status_check
    CHECK (status IN ('pending', 'running', 'failed', 'done', 'skipped', 'duplicate',
                      'superseded'));

ALTER TABLE ledger ADD COLUMN note text;              -- why skipped / duplicate / superseded
ALTER TABLE ledger ADD COLUMN duplicate_of text;      -- the raw key whose content this repeats
ALTER TABLE ledger ADD COLUMN superseded_by bigint REFERENCES ledger (id);

-- duplicate detection looks rows up by content digest
CREATE INDEX ledger_source_digest_idx ON ledger (source_digest) WHERE source_digest IS NOT NULL;
