"""What the engine's forkserver imports, and a guard that ends it with its parent meanwhile.

multiprocessing's forkserver imports its preload modules (librosa's signal stack: 1-2 s
idle, ten on a busy machine) before it watches its parent; a command killed meanwhile
(``kill -9``) left it running until those imports ended. This module comes first in
:data:`WORKER_PRELOAD`: imported in a forkserver, it starts a thread that ends the process
once its parent is gone, and that stops (within :data:`POLL_SECONDS`) when the other
preload modules are imported and the forkserver watches for itself. It imports nothing
heavy, so that the guard is up at once.
"""

from __future__ import annotations

import os
import select
import sys
import threading
import time

#: Imported once by the forkserver; every worker forked from it starts with them loaded.
#: librosa loads lazily, so its spectral modules are named here, not just the package.
WORKER_PRELOAD = (
    __name__,
    "numpy",
    "h5py",
    "librosa.core.spectrum",
    "librosa.feature.spectral",
    "librosa.feature.utils",
    "librosa.filters",
    "gmmspeech.features.extraction_worker",
    "gmmspeech.mixture.stats",
    "gmmspeech.decisions.scoring",
)
#: Seconds between two looks at the parent.
POLL_SECONDS = 0.05


def _imported(name: str) -> bool:
    """``name`` is imported and done executing (a module is in ``sys.modules`` while it
    still runs; importlib marks its spec ``_initializing`` until it is done)."""
    mod = sys.modules.get(name)
    return mod is not None and not getattr(getattr(mod, "__spec__", None), "_initializing", False)


def watch_parent(
    parent: int, alive: int | None, until: tuple[str, ...], poll: float = POLL_SECONDS
) -> bool:
    """Block until the modules ``until`` are all imported (returns True) or the parent is
    gone (ends this process at once, ``os._exit(1)``).

    Parameters
    ----------
    parent : int
        The parent's pid: when it is gone, this process is re-parented (``getppid``
        changes). A parent gone before the guard started is seen only as pid 1 (no
        subreaper).
    alive : int, optional
        The forkserver's ``alive_r``: the reading end of a pipe whose writing end the
        parent holds and never writes to, readable (end of file) once the parent is gone.
        Only a second signal: the parent also sends that writing end with every request for
        a worker, and requests not yet served keep the pipe open.
    until : tuple of str
    poll : float
        Seconds between two looks.
    """
    while not all(_imported(m) for m in until):
        if os.getppid() != parent or parent == 1:
            os._exit(1)
        if alive is None:
            time.sleep(poll)
        elif select.select([alive], [], [], poll)[0]:
            os._exit(1)
    return True


def _forkserver_alive_fd() -> int | None:
    """The forkserver's ``alive_r`` when this import comes from its preload
    (``multiprocessing.forkserver.main`` is on the stack), else None (a program importing
    the package)."""
    frame = sys._getframe(1)
    while True:
        if (
            frame.f_code.co_name == "main"
            and frame.f_globals.get("__name__") == "multiprocessing.forkserver"
        ):
            fd = frame.f_locals.get("alive_r")
            return fd if isinstance(fd, int) else None
        if frame.f_back is None:
            return None
        frame = frame.f_back


_ALIVE = _forkserver_alive_fd()
if _ALIVE is not None:  # pragma: no cover - runs in the forkserver (tested from outside)
    threading.Thread(
        target=watch_parent,
        args=(os.getppid(), _ALIVE, WORKER_PRELOAD[1:]),
        name="gmmspeech-forkguard",
        daemon=True,
    ).start()


__all__ = ["POLL_SECONDS", "WORKER_PRELOAD", "watch_parent"]
