"""One tick of agent <-> world, as the inference thread runs it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping

from ami.interaction.agent import Agent
from ami.interaction.environment import Environment, Feedback
from ami.interaction.spaces import TRUTH_PREFIX, check_observation


class Interaction:
    """Couples an agent with its environment: observe, decide, act.

    Kept apart from the inference thread so that the loop timing and the agent/world
    logic can be tested and swapped separately. It also keeps the experience stream
    truthful: after a pause or a jump of the world, the agent's next steps start a new
    segment (:meth:`~ami.data.StepCollector.begin_segment`).

    Args:
        environment: The world.
        agent: The agent.
        record_truth: Add the world's own state (:meth:`Environment.truth`) to each
            observation as ``truth/<name>``, for an evaluation to pair with the frames
            (the agent passes it into its records; it must not decide on it).
    """

    def __init__(self, environment: Environment, agent: Agent, record_truth: bool = False) -> None:
        self.environment = environment
        self.agent = agent
        self.record_truth = record_truth
        self.observation_space = environment.observation_space()
        """What the world declared it observes; its first observation is checked against it."""
        self.acted_at = 0.0
        """``time.perf_counter()`` when the last step's action was applied."""
        self.observe_seconds = 0.0
        """How long the last step waited for the world's observation (rendering, I/O)."""
        self.agent_seconds = 0.0
        """How long the last step spent in the agent (:meth:`Agent.step` and
        :meth:`Agent.after_action`): a step's spread is the agent's own only if this
        part spreads, not if the world's rendering cost varies with what is in view."""
        self._checked = False
        self.episodes = 0
        """Episodes the world ended so far (worlds with episodes only)."""
        self._episode_return = 0.0
        self._episode_length = 0
        self._episode_metrics: dict[str, float] = {}

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
        started = time.perf_counter()
        observation = self.environment.observe()
        if not self._checked:
            check_observation(observation, self.observation_space, type(self.environment).__name__)
            self._checked = True
        if self.record_truth:
            truth = self.environment.truth()
            if truth:
                observation = {
                    **observation,
                    **{TRUTH_PREFIX + name: value for name, value in truth.items()},
                }
        observed = time.perf_counter()
        self.observe_seconds = observed - started
        if self.environment.broke_continuity():
            self.agent.on_discontinuity()
            self.agent.collector.begin_segment()
        action = self.agent.step(observation)
        decided = time.perf_counter()
        self.environment.affect(action)
        self.acted_at = time.perf_counter()
        feedback = self.environment.feedback()
        self._count(feedback)
        scoring = time.perf_counter()
        self.agent.after_action(feedback)
        self.agent_seconds = (decided - observed) + (time.perf_counter() - scoring)

    def _count(self, feedback: Feedback) -> None:
        """Rewards and episode ends, for the ``world/episode_*`` charts."""
        metrics: dict[str, float] = {}
        if feedback.reward is not None:
            self._episode_return += feedback.reward
            metrics["reward"] = feedback.reward
        self._episode_length += 1
        if feedback.episode_ended:
            self.episodes += 1
            metrics["episode_return"] = self._episode_return
            metrics["episode_length"] = float(self._episode_length)
            self._episode_return, self._episode_length = 0.0, 0
        if feedback.episode_ended or self.episodes:
            metrics["episodes"] = float(self.episodes)
        self._episode_metrics = metrics

    def state_dict(self) -> dict[str, float | int]:
        """The episode under way (its return and length so far) and the count of episodes."""
        return {
            "episodes": self.episodes,
            "episode_return": self._episode_return,
            "episode_length": self._episode_length,
        }

    def load_state_dict(self, state: Mapping[str, float | int]) -> None:
        """Restore :meth:`state_dict`; the episode under way only if the world resumes it."""
        self.episodes = int(state["episodes"])
        if self.environment.resumes_episodes:
            self._episode_return = float(state["episode_return"])
            self._episode_length = int(state["episode_length"])

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
        world = {**self.environment.metrics(), **self._episode_metrics}
        values.update({f"world/{key}": value for key, value in world.items()})
        return values
