"""songgen studio: a local web page to write songs with a model and watch training live.

    from songgen.studio import serve
    serve("checkpoints", port=8000)     # until Ctrl-C

The page and its script ship in `static/`; nothing is fetched from the internet.
"""

from .server import make_server, serve

__all__ = ["make_server", "serve"]
