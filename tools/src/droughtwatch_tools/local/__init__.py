"""Running the pipeline without an AWS account: embedded PostgreSQL, moto, the local runner."""
