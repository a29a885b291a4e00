"""One tick of agent <-> world, as the inference thread runs it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping

from ami.interaction.agent import Agent
from ami.interaction.environment import Environment


class Interaction:
    """Couples an agent with its environment: observe, decide, act.

    Kept apart from the inference thread so that the loop timing and the agent/world
    logic can be tested and swapped separately. It also keeps the experience stream
    truthful: after a pause or a jump of the world, the agent's next steps start a new
    segment (:meth:`~ami.data.StepCollector.begin_segment`).
    """

    def __init__(self, environment: Environment, agent: Agent) -> None:
        self.environment = environment
        self.agent = agent
        self.acted_at = 0.0
        """``time.perf_counter()`` when the last step's action was applied."""

    def setup(self) -> None:
        """Open the world first: an agent may need to know that it exists."""
        self.environment.setup()
        self.agent.setup()

    def step(self) -> None:
        """Observe, choose an action, apply it; then the agent's work that could wait.

        :attr:`acted_at` is when the action went out: the agent's reaction time ends
        there, and work after it (e.g. scoring the previous step) delays nothing the
        world sees.
        """
        observation = self.environment.observe()
        if self.environment.broke_continuity():
            self.agent.on_discontinuity()
            self.agent.collector.begin_segment()
        action = self.agent.step(observation)
        self.environment.affect(action)
        self.acted_at = time.perf_counter()
        self.agent.after_action()

    def on_pause(self) -> None:
        """Stop acting in the world before the agent is told."""
        self.environment.on_pause()
        self.agent.on_pause()
        self.agent.collector.begin_segment()

    def on_resume(self) -> None:
        """Restore in the reverse order of :meth:`on_pause`."""
        self.agent.collector.begin_segment()  # no-op after the pause's, unless one slipped in
        self.agent.on_resume()
        self.environment.on_resume()

    def teardown(self) -> None:
        """Tear both down; the world's reset runs even if the agent's teardown fails."""
        with contextlib.ExitStack() as stack:
            stack.callback(self.environment.teardown)
            self.agent.teardown()

    def metrics(self) -> Mapping[str, float]:
        """The agent's numbers as they are, the world's under ``world/``."""
        values = dict(self.agent.metrics())
        values.update({f"world/{key}": value for key, value in self.environment.metrics().items()})
        return values
