import re
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.plugin_event_accumulator import EventAccumulator
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.custom_scalar import metadata as custom_metadata
from tensorboard.util import tensor_util

from ami.metrics import EventWriter, layout_summary
from ami.metrics.layout import build_layout

CATEGORIES = [
    "losses",
    "agent timing",
    "coverage and reward",
    "resources",
    "training details",
    "model age",
    "buffers",
]


def charts_showing(layout: layout_pb2.Layout, tag: str) -> list[str]:
    """Titles of the charts that plot ``tag``, as TensorBoard matches them."""
    return [
        chart.title
        for category in layout.category
        for chart in category.chart
        if any(re.match(pattern, tag) for pattern in chart.multiline.tag)
    ]


def test_the_page_opens_on_losses_then_timing_coverage_and_resources() -> None:
    layout = build_layout(["representation", "dynamics", "policy"])
    assert [category.title for category in layout.category] == CATEGORIES
    assert [category.closed for category in layout.category] == [False] * 4 + [True] * 3
    losses = [chart.title for chart in layout.category[0].chart]
    assert losses == ["all trainers' losses", "representation loss", "dynamics loss", "policy loss"]


@pytest.mark.parametrize(
    ("tag", "charts"),
    [
        ("training/dynamics/loss", ["all trainers' losses", "dynamics loss"]),
        ("training/policy/loss", ["all trainers' losses", "policy loss"]),
        ("training/dynamics/loss_final", []),
        ("training/dynamics/frame", ["dynamics loss parts"]),
        ("training/dynamics/grad_norm", ["gradient norm (before clipping)"]),
        ("training/policy/rollout/explained_variance", ["rollout statistics (PPO)"]),
        ("inference/step_interval", ["step interval (s)"]),
        ("inference/step_time", ["step time (s)"]),
        ("inference/reaction_time", ["reaction time (s)"]),
        ("inference/observe_time", ["step shares: observe, agent (s)"]),
        ("inference/agent_time", ["step shares: observe, agent (s)"]),
        (
            "inference/world/screen_in_view",
            ["noisy TV (screen in view, steps watching, channel switches)"],
        ),
        ("inference/overruns", ["overruns"]),
        ("inference/overruns_total", []),
        ("inference/world/cells_visited", ["cells visited"]),
        ("inference/intrinsic_reward", ["intrinsic reward"]),
        ("inference/extrinsic_reward", ["extrinsic reward"]),
        ("inference/world/reward", ["extrinsic reward"]),
        ("inference/episode/return", ["episodes"]),
        ("system/rss_mb", ["memory (MB)"]),
        ("system/available_memory_mb", ["memory (MB)"]),
        ("system/cpu_percent/inference", ["CPU (%)"]),
        ("system/machine_cpu_percent", ["CPU (%)"]),
        ("system/gpu0/memory_allocated_mb", ["GPU memory (MB)"]),
        ("system/open_files", ["other resources"]),
        ("inference/model_age/dynamics/seconds", ["seconds since the model was trained"]),
        ("buffer/experience/size", ["steps stored"]),
        ("buffer/experience/waiting", ["other buffer counts"]),
        ("inference/dropped_steps", ["hand-off (pending, dropped)"]),
    ],
)
def test_each_tag_lands_on_its_chart(tag: str, charts: list[str]) -> None:
    assert charts_showing(build_layout(["dynamics", "policy"]), tag) == charts


def test_a_trainer_name_with_regex_characters_matches_only_itself() -> None:
    layout = build_layout(["a.b"])
    assert charts_showing(layout, "training/a.b/loss") == ["all trainers' losses", "a.b loss"]
    assert charts_showing(layout, "training/axb/loss") == ["all trainers' losses"]


@pytest.mark.parametrize(("names", "problem"), [([""], "non-empty"), (["a/b"], "without '/'")])
def test_a_trainer_name_that_cannot_be_a_tag_is_refused(names: list[str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        build_layout(names)
    with pytest.raises(ValueError, match="each trainer is named once"):
        build_layout(["dynamics", "dynamics"])


def test_the_layout_is_written_where_the_custom_scalars_plugin_reads_it(tmp_path: Path) -> None:
    folder = tmp_path
    writer = EventWriter(folder, suffix="main")
    writer.summary(layout_summary(["dynamics"]))
    writer.close()
    accumulator = EventAccumulator(str(folder))
    accumulator.Reload()
    assert custom_metadata.CONFIG_SUMMARY_TAG in accumulator.PluginTagToContent(
        custom_metadata.PLUGIN_NAME
    )
    (event,) = accumulator.Tensors(custom_metadata.CONFIG_SUMMARY_TAG)
    stored = layout_pb2.Layout.FromString(tensor_util.make_ndarray(event.tensor_proto).item())
    assert stored == build_layout(["dynamics"])
