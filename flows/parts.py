"""The live flow's two parts, named without importing the flow: ``basketflow run``
starts a process per part before it imports anything heavy (see
:mod:`basketflow.app.flow_processes`)."""

from __future__ import annotations

#: Customer and basket features and live scores (Redis first); the offline store.
SERVE, STORE = "serve", "store"
PARTS = (SERVE, STORE)
