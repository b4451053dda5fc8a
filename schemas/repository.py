"""A feature repository: a folder of Python files declaring feature views
(:mod:`basketflow.schemas.declare`), loaded into the views they declare.

Each ``*.py`` file directly in the folder (not ``_*.py``, which hold helpers the others
may import) is run on its own, and its module-level
:class:`~basketflow.schemas.declare.View` objects are its views. Anything
wrong is one :class:`~basketflow.schemas.declare.DeclarationError` naming the file and
line: a syntax error, an exception while the file runs, two views of one name, a folder
without views, or a built-in view (``customer``, ``basket``, ``product``) declared other
than as basketflow computes it.

The built-in views are computed by basketflow's own state classes, so a repository may
declare them (``basketflow init`` copies their declarations as a starting point) only as
they are; they are served whether it declares them or not. Every other view is the
repository's own.

>>> from basketflow.schemas.default_repository import FILES
>>> import shutil, tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> _ = shutil.copy(FILES[0], folder)
>>> repository = load_repository(folder)
>>> sorted(repository.views), repository.own
(['basket', 'customer', 'product'], ())
"""

from __future__ import annotations

import os
import runpy
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

from basketflow.schemas.declare import DeclarationError, View, views_in
from basketflow.schemas.feature_view import FeatureView
from basketflow.schemas.features import registry


@dataclass(frozen=True)
class Repository:
    """The views of a feature repository: the built-in ones and its own, compiled."""

    path: Path
    #: Every view by name: the built-in views, then the repository's own in file order.
    views: dict[str, FeatureView]
    #: The names of the repository's own views (not built in).
    own: tuple[str, ...]
    #: Where each view the repository declares is declared (``FILE line N``).
    declared_at: dict[str, str]
    #: The repository's own views' declarations, by name.
    declarations: dict[str, View]


def builtin_declarations() -> dict[str, View]:
    """The built-in views' declarations, by name."""
    from basketflow.schemas.default_repository import FILES
    return {view.name: view for path in FILES for view in _run(path, path.parent)}


def load_repository(folder: Path) -> Repository:
    """Load and check the repository in ``folder``."""
    if not folder.is_dir():
        raise DeclarationError(f"the feature repository {folder} is not a folder: create "
                               "it (basketflow init) or fix feature_repository in "
                               "basketflow.yaml")
    declared: dict[str, View] = {}
    for path in sorted(p for p in folder.glob("*.py") if not p.name.startswith("_")):
        for view in _run(path, folder):
            if view.name in declared:
                raise DeclarationError(f"{view.declared_at}: view {view.name!r} is declared "
                                       f"twice (also at {declared[view.name].declared_at})")
            declared[view.name] = view
    if not declared:
        raise DeclarationError(f"the feature repository {folder} declares no views: add a "
                               "file with a View(...) (basketflow init writes examples)")
    builtins = builtin_declarations()
    for name, view in declared.items():
        if name in builtins:
            _check_builtin(view, builtins[name])
    own = tuple(name for name in declared if name not in builtins)
    views = dict(registry()) | {name: declared[name].compile() for name in own}
    return Repository(folder, views, own,
                      {name: view.declared_at for name, view in declared.items()},
                      {name: declared[name] for name in own})


def _run(path: Path, folder: Path) -> list[View]:
    """The views one file declares, run with ``folder`` importable (its ``_*.py``
    helpers); its errors as one :class:`DeclarationError`."""
    sys.path.insert(0, str(folder))
    try:
        namespace = runpy.run_path(str(path), run_name=f"basketflow_repository.{path.stem}")
    except DeclarationError:
        raise
    except SyntaxError as exc:
        raise DeclarationError(f"{path} line {exc.lineno}: syntax error: {exc.msg}") from exc
    except Exception as exc:  # the user's code: name its line, not a traceback
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
        line = f" line {frames[-1].lineno}" if frames else ""
        raise DeclarationError(f"{path}{line}: {type(exc).__name__}: {exc}") from exc
    finally:
        sys.path.remove(str(folder))
        _forget_helpers(folder)
    return views_in(namespace)


def _forget_helpers(folder: Path) -> None:
    """Unload the helper modules imported from ``folder``: another repository's helpers
    of the same name must not be taken for them, nor an edited file for its old self."""
    folders = {str(folder), str(folder.resolve())}  # as imported from sys.path, or resolved
    for name, module in list(sys.modules.items()):
        origin = getattr(module, "__file__", None)
        if origin and os.path.dirname(origin) in folders:
            del sys.modules[name]


def _check_builtin(view: View, builtin: View) -> None:
    """A built-in view declared as basketflow computes it, or an error saying where not."""
    if view.signature() == builtin.signature():
        return
    mine, theirs = view.signature(), builtin.signature()
    differs = next((a for a, b in zip(mine, theirs, strict=False) if a != b), "its features")
    raise DeclarationError(
        f"{view.declared_at}: view {view.name!r} is built into basketflow and computed by "
        f"its own code, so it must be declared as basketflow ships it (it differs in: "
        f"{differs}); declare changed features in a new view under another name")
