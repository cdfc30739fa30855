"""The "Model observability" dashboard as one HTML page that opens offline, for a first look
without Docker: Grafana's own panels (grafana/dashboard.py) and their SQL (grafana/queries.py),
run on the database and drawn with plotly, whose JavaScript the page embeds.

`panels` (which panels, from the dashboard and its alert rules), `data` (the time range, the
SQL run once per query), `figures` (a panel's rows as a plotly figure, a stat or a table),
`html` (the page) and `page` (read, draw, write: what the command and the demo call).
"""
