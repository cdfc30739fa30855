-- A claim's owner, for local runs: the key of the session-level advisory lock that the process
-- holding the claim keeps for as long as it lives (settings' claim_lock; the lock's first key
-- is adapters/ledger.py's CLAIM_LOCK_SPACE). A running file whose lock is gone was dropped by a
-- process that died (kill -9, a crash): another run takes it over at once instead of waiting
-- for its lease. NULL on AWS, where the lease alone ends a claim.
-- A column of an existing table: the table-level grants of migration 0003 cover it.
ALTER TABLE ledger ADD COLUMN claim_lock integer CHECK (claim_lock > 0);
