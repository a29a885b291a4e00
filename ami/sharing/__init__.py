"""Single-writer sharing between threads: who may write an object, and read-only views."""

from ami.sharing.ownership import Owned, OwnershipError, ReadOnlyError, ReadOnlyHandle, writes

__all__ = ["Owned", "OwnershipError", "ReadOnlyError", "ReadOnlyHandle", "writes"]
