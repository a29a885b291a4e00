"""TensorBoard metrics, written synchronously by the thread that owns each writer."""

from ami.metrics.event_writer import EventWriter

__all__ = ["EventWriter"]
