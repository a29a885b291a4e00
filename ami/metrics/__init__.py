"""TensorBoard metrics, written synchronously by the thread that owns each writer.

- :class:`EventWriter`: one event file per thread, all in the run's ``tensorboard/``;
- :mod:`~ami.metrics.hparams`: the run's row in the HParams tab (:func:`run_hparams`);
- :mod:`~ami.metrics.layout`: the Custom Scalars page (:func:`layout_summary`);
- :mod:`~ami.metrics.panels`: image strips with captioned panels (:func:`labelled_strip`).
"""

from ami.metrics.event_writer import EventWriter
from ami.metrics.hparams import HParamValue, run_hparams
from ami.metrics.layout import layout_summary
from ami.metrics.panels import labelled_strip

__all__ = ["EventWriter", "HParamValue", "labelled_strip", "layout_summary", "run_hparams"]
