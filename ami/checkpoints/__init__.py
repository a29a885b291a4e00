"""Checkpoints: what a run's state is, how it is written to disk, and where it lives.

- :mod:`ami.checkpoints.run_state`: the parts of a checkpoint and the rules of a resume;
- :mod:`ami.checkpoints.saving`: threads hand over snapshots, the main thread writes;
- :mod:`ami.checkpoints.file_format`: the file (safetensors layout, checksum, no pickle);
- :mod:`ami.checkpoints.store`: the folder (time-stamped files, ``LATEST``, retention).
"""

from ami.checkpoints.file_format import CheckpointError, read
from ami.checkpoints.store import CheckpointStore, find_latest, resolve

__all__ = ["CheckpointError", "CheckpointStore", "find_latest", "read", "resolve"]
