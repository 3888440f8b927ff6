"""Push triggers without Jenkins: the GitHub webhook (``mlops serve``: :mod:`.server`, an ASGI application on
uvicorn; what a delivery means in :mod:`.github`; what a connection may hold in :mod:`.connections` and
:mod:`.limits`) and the poller (``mlops watch``), both feeding the durable push queue of :mod:`.pushes`.
Import from those modules: this one loads nothing, so that the command's help does not load a server."""
