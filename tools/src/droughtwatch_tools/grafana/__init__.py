"""Grafana as code: the provisioning files, and the compose project `droughtwatch grafana` runs.

The datasource, the "Model observability" dashboard and the alert rules are built here and
written to the repository's `grafana/` folder (`python -m droughtwatch_tools.grafana`);
`droughtwatch grafana` starts that compose project against the local demo's embedded database
or against RDS through the bastion tunnel. Import from the module that does the job:
`queries` (the SQL), `panels` and `dashboard`, `alerts`, `datasource`, `provisioning` (the
files), `connection` and `compose`; the command itself is `droughtwatch_tools.commands.grafana`.
"""
