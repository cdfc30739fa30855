"""The `droughtwatch` command and everything a user runs on their own machine: the local runner
and demo (the image's handlers in-process, an embedded PostgreSQL, a folder store), the cloud
commands, Grafana, model check and publish, and the baseline network's training. None of it
ships in the Lambda image."""
