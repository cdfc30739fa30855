"""Adapters to the outside world (S3, PostgreSQL, Secrets Manager): the only modules that import
boto3 or psycopg. They turn library errors into the domain errors of `errors.py`."""
