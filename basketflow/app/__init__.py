"""The application layer: what the commands do, as functions the command line and other
front ends (the Python API, an HTTP server) call. One module per command group (run,
data, features, backfill, reports, models, demo; services, status and flow_processes
for the servers and the flow's processes), plus :mod:`basketflow.app.feature_store`, the
Python entry point. Functions return typed results and take progress callbacks where the
work is long; none prints, and none imports click or rich."""
