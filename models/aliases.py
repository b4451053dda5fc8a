"""The model registry's aliases: which registered version does what.

``champion`` is the version the live flow scores with and ``basketflow serve`` answers
with; ``challenger`` is scored in shadow, its predictions kept offline and never served
(see :mod:`basketflow.models.registry`). Kept apart from the registry so the command
line names them without loading any model library.
"""

CHAMPION = "champion"
CHALLENGER = "challenger"
ALIASES = (CHAMPION, CHALLENGER)
