"""ami: an agent acts in its world while deep models learn from what it lives through.

The runtime has exactly three threads (see ``ami.threads``): main (system control and
the web API), inference (agent <-> world at a fixed interval) and training. Every
object they share has one writing thread (``ami.sharing``).
"""

from ami.openmp import choose_wait_policy

# Before anything imports torch: OpenMP reads its wait policy once, as it loads.
choose_wait_policy()

__version__ = "0.1.0"
