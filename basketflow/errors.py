"""The one root of basketflow's own errors.

Every error that is the user's to fix (a server that does not answer, a file that cannot
be read or written, a model or segmentation that is missing or damaged) derives from
:class:`BasketflowError`, and its message says what happened and what to do. The command
line catches this one class and prints the message as one ``Error:`` line; anything else
is a bug.

>>> from basketflow.sinks.store_writes import StoreUnwritable
>>> issubclass(StoreUnwritable, BasketflowError)
True
"""

from __future__ import annotations


class BasketflowError(Exception):
    """An error whose message tells the user what to do."""
