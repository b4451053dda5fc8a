"""The default feature repository: basketflow's built-in views (``customer``, ``basket``,
``product``) declared in :mod:`basketflow.schemas.declare`. ``basketflow init`` copies
these files into a new project's ``features/`` folder as a starting point, and the
registry (:mod:`basketflow.schemas.features`) is compiled from them."""

from pathlib import Path

#: The repository's files, in the order their views are listed.
FILES = tuple(Path(__file__).parent / name for name in ("customer.py", "basket.py",
                                                        "product.py"))
