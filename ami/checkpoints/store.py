"""The checkpoint folder: time-stamped files, a ``LATEST`` pointer, and retention.

Why a pointer file and not "the newest name": a checkpoint becomes the one to resume
from only once its writer has finished *and* the run has committed it, in that order;
``LATEST`` is replaced atomically (temporary file, fsync, rename, directory fsync), so
a crash at any moment leaves either the old or the new pointer, each naming a complete
file. File names sort by time (UTC, microseconds) and then by a counter that only
grows within a folder, so two saves in one microsecond, or a clock stepped back, still
give distinct names in the order they were written.

Why a separate :func:`find_latest`: ``resume_from=latest`` looks across every run of a
task, where the newest file may be damaged (a disk that filled, a copy cut short); it
checks each candidate's checksum and falls back to the next newest.

The main thread owns a store (it writes checkpoints between API requests); the module
functions run before any thread starts.
"""

from __future__ import annotations

import errno
import logging
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from ami.checkpoints.file_format import (
    PARTIAL_SUFFIX,
    CheckpointError,
    fsync_directory,
    fsync_file,
    os_error_cause,
    read_header_and_verify,
)

logger = logging.getLogger(__name__)

SUFFIX = ".ckpt"
POINTER = "LATEST"
"""The file in a checkpoint folder that names the checkpoint to resume from."""
LEGACY_FILE = "latest.pt"
"""What ami wrote before this format (a torch.save file)."""

_STAMP_FORMAT = "%Y-%m-%dT%H-%M-%S.%fZ"
_NAME = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}\.\d{6}Z)-(\d{4,})" + re.escape(SUFFIX))
_ACCEPTED = (
    "give a .ckpt file, a checkpoint folder (holding LATEST or *.ckpt files), a run folder "
    "holding checkpoints/, or resume_from=latest"
)


class _Name(NamedTuple):
    """A checkpoint file name's parts, in sort order."""

    stamp: str
    counter: int


def _parse(name: str) -> _Name | None:
    match = _NAME.fullmatch(name)
    return _Name(match[1], int(match[2])) if match else None


def checkpoint_files(directory: Path) -> list[Path]:
    """The checkpoint files in ``directory``, oldest first; other files are left out.

    Only names this module makes count, so retention never deletes a file someone put
    there by hand.
    """
    try:
        with os.scandir(directory) as entries:
            names = [(key, e.name) for e in entries if (key := _parse(e.name)) and e.is_file()]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [directory / name for _, name in sorted(names)]


def _key(path: Path) -> tuple[_Name, str]:
    name = _parse(path.name)
    assert name is not None, path  # only names checkpoint_files() listed
    return name, str(path)


def validate_keep_last(keep_last: object) -> int | None:
    """``checkpoint.keep_last``: None (keep every checkpoint) or an integer >= 1."""
    if keep_last is None or (type(keep_last) is int and keep_last >= 1):
        return keep_last
    raise ValueError(
        f"checkpoint.keep_last={keep_last!r}: must be null (keep every checkpoint) or an "
        "integer >= 1 (how many of the newest checkpoints to keep)"
    )


class CheckpointStore:
    """One run's checkpoint folder.

    Args:
        directory: The folder (created by the first :meth:`new_path`).
        keep_last: How many of the newest checkpoints :meth:`commit` keeps; None keeps
            all. The one ``LATEST`` names is never deleted.

    Raises:
        ValueError: ``keep_last`` is neither None nor an integer >= 1.
    """

    def __init__(self, directory: Path, keep_last: int | None = 3) -> None:
        self.directory = Path(directory)
        self.keep_last = validate_keep_last(keep_last)
        self._issued: _Name | None = None
        self._warned: str | None = None

    @property
    def pointer(self) -> Path:
        """The ``LATEST`` file."""
        return self.directory / POINTER

    def new_path(self) -> Path:
        """The path for the next checkpoint: sorts after every file the folder holds."""
        self.directory.mkdir(parents=True, exist_ok=True)
        newest = [_key(path)[0] for path in checkpoint_files(self.directory)]
        if self._issued is not None:
            newest.append(self._issued)
        stamp = datetime.now(UTC).strftime(_STAMP_FORMAT)
        counter = 1
        if newest:
            last = max(newest)
            stamp, counter = max(stamp, last.stamp), max(n.counter for n in newest) + 1
        self._issued = _Name(stamp, counter)
        return self.directory / f"{stamp}-{counter:04d}{SUFFIX}"

    def commit(self, path: Path) -> None:
        """Make the finished checkpoint ``path`` the latest, then apply ``keep_last``.

        Raises:
            ValueError: ``path`` is not a checkpoint file of this folder.
            FileNotFoundError: ``path`` does not exist (commit only after its writer
                finished).
            CheckpointError: ``LATEST`` could not be written (the previous one stays).
        """
        path = Path(path)
        if _parse(path.name) is None or path.parent.resolve() != self.directory.resolve():
            raise ValueError(
                f"commit({str(path)!r}): not a checkpoint file of {self.directory}; "
                "commit a path from new_path() once its writer finished"
            )
        if not path.is_file():
            raise FileNotFoundError(
                f"commit({str(path)!r}): no such file; commit a path once its writer finished"
            )
        self._write_pointer(path.name)
        self._prune(path.name)

    def latest(self) -> Path | None:
        """The checkpoint to resume from: the one ``LATEST`` names; None if there is none.

        A ``LATEST`` that is missing, unreadable or names a missing file falls back to
        the newest checkpoint file by name, with a warning (once per situation: the
        status calls this often).
        """
        try:
            name: str | None = self.pointer.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            name = None
        except (OSError, UnicodeDecodeError) as exc:
            reason = os_error_cause(exc) if isinstance(exc, OSError) else "not text"
            self._warn(f"cannot read {self.pointer} ({reason})")
            name = None
        if name and name == Path(name).name and name not in (".", ".."):
            named = self.directory / name
            if named.is_file():
                self._warned = None
                return named
        files = checkpoint_files(self.directory)
        if name is None and not files:
            return None
        problem = f"{self.pointer} names {name!r}, which is missing" if name else f"no {POINTER}"
        if not files:
            self._warn(f"{problem}, and {self.directory} holds no checkpoint")
            return None
        self._warn(f"{problem}; using the newest checkpoint file, {files[-1].name}")
        return files[-1]

    def remove_stale_partials(self) -> list[Path]:
        """Delete the ``*.partial`` files a killed process left; call it before writing.

        A partial file is never a checkpoint: writers rename only complete files. Any
        present when the run starts were left by a process that stopped mid-write.
        """
        removed = []
        for path in sorted(self.directory.glob(f"*{PARTIAL_SUFFIX}")):
            if not path.is_file():
                continue
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            logger.info("removed %s, a partial file left by a process that stopped mid-write", path)
            removed.append(path)
        return removed

    def _write_pointer(self, name: str) -> None:
        temporary = self.pointer.with_name(POINTER + PARTIAL_SUFFIX)
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
            try:
                data = f"{name}\n".encode()
                if os.write(fd, data) != len(data):
                    raise OSError(errno.EIO, "short write")
                fsync_file(fd)
            finally:
                os.close(fd)
            os.replace(temporary, self.pointer)
            fsync_directory(self.directory)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            cause = os_error_cause(exc)
            raise CheckpointError(
                self.pointer, cause, f"{cause} while saving {self.pointer}"
            ) from exc

    def _prune(self, latest: str) -> None:
        if self.keep_last is None:
            return
        files = checkpoint_files(self.directory)
        keep = {path.name for path in files[-self.keep_last :]} | {latest}
        for path in files:
            if path.name in keep:
                continue
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                logger.warning("could not remove old checkpoint %s: %s", path, os_error_cause(exc))
                continue
            logger.info("removed old checkpoint %s (checkpoint.keep_last=%d)", path, self.keep_last)

    def _warn(self, message: str) -> None:
        if message != self._warned:
            logger.warning(message)
            self._warned = message


def resolve(source: Path) -> Path:
    """The checkpoint file ``resume_from=<source>`` means.

    ``source`` may be a checkpoint file, a checkpoint folder (its latest) or a run
    folder holding ``checkpoints/``.

    Raises:
        FileNotFoundError: No checkpoint there; the message says what is accepted.
    """
    source = Path(source)
    if source.is_file():
        return source  # read() says what it is if it is not a checkpoint
    why = "it does not exist"
    if source.is_dir():
        why = "it holds neither LATEST, *.ckpt files nor checkpoints/"
        for folder in (source, source / "checkpoints"):
            if folder.is_dir() and ((folder / POINTER).exists() or checkpoint_files(folder)):
                found = CheckpointStore(folder, keep_last=None).latest()
                if found is not None:
                    return found
            if (folder / LEGACY_FILE).is_file():
                why = (
                    f"{folder / LEGACY_FILE} is an older ami checkpoint (torch.save format); "
                    "this version cannot read it"
                )
    shown = f"'{source}'" if source.is_absolute() else f"'{source}' (that is {source.absolute()})"
    raise FileNotFoundError(f"resume_from={shown}: no checkpoint there; {why}; {_ACCEPTED}")


def find_latest(task_dir: Path) -> Path:
    """The newest complete checkpoint of any run of a task, for ``resume_from=latest``.

    Looks in ``task_dir/runs/*/checkpoints/`` and ``task_dir/multiruns/*/*/checkpoints/``
    and orders by the files' time stamps. "Complete" is the full check of
    :func:`read_header_and_verify` (header and checksum over every byte, so about one
    read of the file); candidates are checked newest first, so usually one is read. A
    broken one is skipped with a warning naming it.

    Raises:
        FileNotFoundError: No complete checkpoint; the message names ``task_dir``.
    """
    task_dir = Path(task_dir)
    folders = [*task_dir.glob("runs/*/checkpoints"), *task_dir.glob("multiruns/*/*/checkpoints")]
    candidates = [path for folder in folders for path in checkpoint_files(folder)]
    candidates.sort(key=_key, reverse=True)
    skipped = 0
    for path in candidates:
        try:
            read_header_and_verify(path)
        except CheckpointError as exc:
            logger.warning("resume_from=latest: skipping %s (%s)", path, exc.cause)
            skipped += 1
            continue
        return path
    broken = f"; {skipped} broken one(s) skipped, see the warnings" if skipped else ""
    raise FileNotFoundError(
        f"resume_from=latest: no complete checkpoint under {task_dir} (looked in "
        f"runs/*/checkpoints/ and multiruns/*/*/checkpoints/){broken}"
    )
