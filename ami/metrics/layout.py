"""The run's page in TensorBoard's Custom Scalars tab: what matters first.

The Scalars tab lists charts by tag name (``buffer/...`` first); this layout opens on
the questions a researcher asks of a run, in order:

1. **losses**: all trainers' losses on one chart, then each trainer's loss;
2. **agent timing**: the step interval, the time a step takes, overruns;
3. **coverage and reward**: cells visited (simulated world), the intrinsic reward,
   extrinsic reward and episode charts where the world has them;
4. **resources**: memory, CPU, GPU (``system/*``);
5. then, closed until opened: training details (gradient norm, learning rate,
   samples per second, loss parts, PPO's rollout statistics), model age, buffers.

Charts select tags by regular expression (Python ``re.match``; TensorBoard plots every
matching tag of every selected run), so a tag a run lacks just leaves its chart empty
and a world that adds ``inference/extrinsic_reward`` or ``inference/episode/*`` needs
no new layout. Every run writes it once into the main thread's event file; TensorBoard
merges the layouts of all runs (categories by title, identical charts once), so the
jobs of a sweep whose trainers differ show one page with every trainer.

Example:
    >>> writer.summary(layout_summary(["dynamics", "policy"]))  # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboard.compat.proto.tensor_pb2 import TensorProto
from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
from tensorboard.plugins.custom_scalar import layout_pb2, metadata

_NOT_LOSS_PARTS = "loss|loss_final|loss_best|grad_norm|learning_rate|samples_per_second"


def build_layout(trainers: Sequence[str]) -> layout_pb2.Layout:
    """The categories and charts, in the order the tab shows them.

    Args:
        trainers: Names of the run's trainers (``training/<trainer>/...``), in the
            order their charts appear.

    Raises:
        ValueError: A trainer name is empty, holds a ``/`` or is given twice.
    """
    names = list(trainers)
    for name in names:
        if not name or "/" in name:
            raise ValueError(f"trainer name {name!r}: it must be non-empty, without '/'")
    if len(set(names)) != len(names):
        raise ValueError(f"trainer names {names}: each trainer is named once")
    losses = [_chart("all trainers' losses", r"training/[^/]+/loss$")]
    losses += [_chart(f"{name} loss", rf"training/{re.escape(name)}/loss$") for name in names]
    details = [
        _chart("gradient norm (before clipping)", r"training/[^/]+/grad_norm$"),
        _chart("learning rate", r"training/[^/]+/learning_rate$"),
        _chart("samples per second", r"training/[^/]+/samples_per_second$"),
    ]
    details += [
        _chart(f"{name} loss parts", rf"training/{re.escape(name)}/(?!({_NOT_LOSS_PARTS})$)[^/]+$")
        for name in names
    ]
    details.append(_chart("rollout statistics (PPO)", r"training/[^/]+/rollout/"))
    categories = [
        layout_pb2.Category(title="losses", chart=losses),
        layout_pb2.Category(
            title="agent timing",
            chart=[
                _chart("step interval (s)", r"inference/step_interval$"),
                _chart("step time (s)", r"inference/step_time$"),
                _chart("reaction time (s)", r"inference/reaction_time$"),
                _chart(
                    "step shares: observe, agent (s)",
                    r"inference/(observe_time|agent_time)$",
                ),
                _chart("overruns", r"inference/overruns$"),
            ],
        ),
        layout_pb2.Category(
            title="coverage and reward",
            chart=[
                _chart("cells visited", r"inference/world/cells_visited$"),
                _chart(
                    "noisy TV (screen in view, steps watching, channel switches)",
                    r"inference/world/(screen_in_view|screen_steps|channel_switches)$",
                ),
                _chart("intrinsic reward", r"inference/intrinsic_reward$"),
                _chart("extrinsic reward", r"inference/(.+/)?(extrinsic_)?reward$"),
                _chart("episodes", r"inference/(.+/)?episode"),
            ],
        ),
        layout_pb2.Category(
            title="resources",
            chart=[
                _chart("memory (MB)", r"system/(?!gpu).*_mb$"),
                _chart("CPU (%)", r"system/.*cpu_percent"),
                _chart("GPU memory (MB)", r"system/gpu"),
                _chart("other resources", r"system/(?!gpu)(?!.*(_mb$|cpu_percent))"),
            ],
        ),
        layout_pb2.Category(title="training details", chart=details, closed=True),
        layout_pb2.Category(
            title="model age",
            chart=[
                _chart("seconds since the model was trained", r"inference/model_age/.+/seconds$"),
                _chart(
                    "optimizer steps of the model acting",
                    r"inference/model_age/.+/optimizer_steps$",
                ),
            ],
            closed=True,
        ),
        layout_pb2.Category(
            title="buffers",
            chart=[
                _chart("steps stored", r"buffer/[^/]+/size$"),
                _chart("steps added", r"buffer/[^/]+/total_added$"),
                _chart("steps evicted", r"buffer/[^/]+/evicted$"),
                _chart("other buffer counts", r"buffer/(?!.*/(size|total_added|evicted)$)"),
                _chart(
                    "hand-off (pending, dropped)",
                    r"inference/(pending_steps|dropped_steps|discarded_records)$",
                ),
            ],
            closed=True,
        ),
    ]
    return layout_pb2.Layout(category=categories)


def layout_summary(trainers: Sequence[str]) -> Summary:
    """:func:`build_layout` as the summary TensorBoard's Custom Scalars tab reads.

    Write it once per run (any step): ``writer.summary(layout_summary(trainers))``.
    """
    layout = build_layout(trainers)
    tensor = TensorProto(
        dtype="DT_STRING",
        string_val=[layout.SerializeToString()],
        tensor_shape=TensorShapeProto(),
    )
    plugin = SummaryMetadata.PluginData(plugin_name=metadata.PLUGIN_NAME)
    value = Summary.Value(
        tag=metadata.CONFIG_SUMMARY_TAG, tensor=tensor, metadata=SummaryMetadata(plugin_data=plugin)
    )
    return Summary(value=[value])


def _chart(title: str, *patterns: str) -> layout_pb2.Chart:
    for pattern in patterns:
        re.compile(pattern)  # a broken pattern fails here, not silently in the tab
    return layout_pb2.Chart(title=title, multiline=layout_pb2.MultilineChartContent(tag=patterns))
