"""``basketflow serve``: the HTTP API over the online store, the live model and the
events topic (FastAPI on uvicorn).

One module per idea: the routes (:mod:`~basketflow.serving.api`), Feast's request and
response shapes (:mod:`~basketflow.serving.feast`), API keys and roles
(:mod:`~basketflow.serving.auth`), Prometheus metrics and the access log
(:mod:`~basketflow.serving.metrics`), the hot reads' short dispatch
(:mod:`~basketflow.serving.direct`), uvicorn's protocol with one write per response
(:mod:`~basketflow.serving.http`), what a server process is started with
(:mod:`~basketflow.serving.options`) and how (:mod:`~basketflow.serving.server`). What a
route computes is the application layer's (:mod:`basketflow.app.features`,
:mod:`basketflow.app.predict`, :mod:`basketflow.app.posted`): this layer only speaks
HTTP. It sits between the command line and the application layer.
"""
