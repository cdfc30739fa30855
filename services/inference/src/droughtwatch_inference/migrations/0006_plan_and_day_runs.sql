-- An execution fans out (issue 18): Plan splits the waiting files into items, a child workflow
-- per item runs the stages on exactly its files, and the day step pools the stale days once.
-- Plan and the day step record their invocations in runs as the stages do: Plan's files_done
-- counts the files it handed to the Map and remaining those it left for a later round; the day
-- step's files_done, files_failed and remaining count days (pooled, failed, still stale).
-- (The step names are droughtwatch_contract.stages.WORKFLOW's; a test compares them.)
ALTER TABLE runs DROP CONSTRAINT runs_stage_check, ADD CONSTRAINT runs_stage_check
    CHECK (stage IN ('plan', 'processing', 'inference', 'observe', 'day'));

-- Plan looks for the files waiting for any stage in claim order at every round: an index over
-- the unfinished files keeps that query small when the ledger holds years of done files.
CREATE INDEX ledger_waiting_idx ON ledger (batch_date, registered_at, id) WHERE stage <> 'done';
