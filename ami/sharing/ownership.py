"""Write permission for objects shared between threads.

The design rule: at most one thread writes a shared object; every other thread only
reads it. The writing thread is recorded on the object; methods that change it are
marked with :func:`writes` and refuse to run on any other thread. Write permission
moves only through :meth:`Owned.transfer_to`, called by the current writer.

Example:
    >>> class Counter(Owned):
    ...     def __init__(self) -> None:
    ...         super().__init__("counter")
    ...         self.value = 0
    ...     @writes
    ...     def increment(self) -> None:
    ...         self.value += 1
    >>> counter = Counter()          # the creating thread writes it
    >>> counter.increment()
    >>> counter.value                # any thread may read it
    1

Other threads get purpose-built :class:`ReadOnlyHandle` subclasses that expose only
what they may read (the model gate's inference side, a thread's system control).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")
OwnedT = TypeVar("OwnedT", bound="Owned")

_WRITES_MARK = "__ami_writes__"


class OwnershipError(RuntimeError):
    """A thread tried to change an object that another thread writes."""


class ReadOnlyError(OwnershipError):
    """A write was attempted through a read-only view."""


class Owned:
    """Base class of objects with a single writing thread.

    The writer starts as the constructing thread, because the thread that creates a
    shared object is usually the one that fills it.
    """

    def __init__(self, name: str) -> None:
        self._owned_name = name
        self._writer = threading.current_thread()

    @property
    def shared_name(self) -> str:
        """Name used in errors and in the status report."""
        return self._owned_name

    @property
    def writer(self) -> threading.Thread:
        """The one thread allowed to change this object."""
        return self._writer

    def check_writer(self, action: str) -> None:
        """Raise unless the calling thread is the writer.

        Args:
            action: What the caller was about to do, for the error message.

        Raises:
            OwnershipError: The calling thread is not the writer.
        """
        current = threading.current_thread()
        if current is not self._writer:
            raise OwnershipError(
                f"{self._owned_name}.{action}: thread {current.name!r} may only read this "
                f"object; thread {self._writer.name!r} writes it "
                "(the writer moves it with transfer_to())"
            )

    def transfer_to(self, thread: threading.Thread) -> None:
        """Move write permission to ``thread``; only the current writer may do this.

        Raises:
            OwnershipError: The calling thread is not the writer.
        """
        self.check_writer("transfer_to")
        self._writer = thread


def writes(
    method: Callable[Concatenate[OwnedT, P], R],
) -> Callable[Concatenate[OwnedT, P], R]:
    """Mark a method of an :class:`Owned` object as changing it.

    The method then runs only on the writing thread, and a :class:`ReadOnlyHandle`
    refuses to hand it out.
    """

    @functools.wraps(method)
    def guarded(self: OwnedT, /, *args: P.args, **kwargs: P.kwargs) -> R:
        self.check_writer(method.__name__)
        return method(self, *args, **kwargs)

    setattr(guarded, _WRITES_MARK, True)
    return guarded


class ReadOnlyHandle:
    """Base of purpose-built read-only handles (e.g. a thread's control handle).

    Such a handle exposes only reading methods of the object it stands for; asking it
    for one of that object's writing methods raises :class:`ReadOnlyError` naming the
    object and its writer, instead of a bare ``AttributeError``.
    """

    def _read_only_target(self) -> Owned:
        """The object this handle reads."""
        raise NotImplementedError

    def __getattr__(self, name: str) -> Any:
        target = self._read_only_target()
        if getattr(getattr(type(target), name, None), _WRITES_MARK, False):
            raise ReadOnlyError(
                f"{target.shared_name}: {name}() changes the object, but this is a "
                f"read-only handle; thread {target.writer.name!r} writes it"
            )
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
