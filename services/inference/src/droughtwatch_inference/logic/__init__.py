"""Stage logic: plain values in and out. No boto3 and no psycopg here; the adapters that do the
I/O are passed in."""
