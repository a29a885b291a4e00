import copy
import threading
import time

import pytest
import torch
from lightning_fabric import Fabric
from torch import nn

from ami.models import ModelWrapper
from ami.sharing import OwnershipError, ReadOnlyError


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Dropout(0.5), nn.Linear(8, 2))


def adam_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor) -> None:
    optimizer.zero_grad()
    model(x).pow(2).sum().backward()
    optimizer.step()


def params(module: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def test_inference_copy_is_eval_without_grad_and_runs_in_inference_mode() -> None:
    wrapper = ModelWrapper("m", make_model())
    inference = wrapper._published.module
    assert not inference.training
    assert all(not p.requires_grad for p in inference.parameters())
    assert wrapper.training_module.training
    assert all(p.requires_grad for p in wrapper.training_module.parameters())
    out = wrapper.inference(torch.ones(3, 4))
    assert out.is_inference()
    assert torch.equal(out, wrapper.inference(torch.ones(3, 4))), "eval mode: dropout off"


def test_sync_switches_references_and_publishes_training_values() -> None:
    wrapper = ModelWrapper("m", make_model())
    trained = wrapper.training_module
    old_inference = wrapper._published.module
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(1.0)
    expected = params(trained)
    wrapper.sync()
    assert wrapper._published.module is trained, "the trained module itself is published"
    assert wrapper.training_module is old_inference, "the old inference copy now trains"
    for published, retired, value in zip(
        wrapper._published.module.parameters(), wrapper.training_module.parameters(), expected
    ):
        assert torch.equal(published, value)
        assert torch.equal(retired, value)
        assert published.data_ptr() != retired.data_ptr()
    assert wrapper.training_module.training and not wrapper._published.module.training
    assert all(p.requires_grad for p in wrapper.training_module.parameters())
    assert all(not p.requires_grad for p in wrapper._published.module.parameters())
    assert wrapper.syncs == 1


def test_frozen_parameters_stay_frozen_across_syncs() -> None:
    model = make_model()
    model[0].weight.requires_grad_(False)
    wrapper = ModelWrapper("m", model)
    wrapper.sync()
    wrapper.sync()
    flags = [p.requires_grad for p in wrapper.training_module.parameters()]
    assert flags == [False, True, True, True]


@pytest.mark.parametrize("use_fabric", [False, True])
def test_optimizer_follows_the_training_copy_and_keeps_its_state(use_fabric: bool) -> None:
    """Training with syncs between steps matches training without any sync, exactly."""
    x = torch.randn(16, 4)
    reference = make_model()
    reference_opt = torch.optim.Adam(reference.parameters(), lr=0.01)

    wrapper = ModelWrapper("m", make_model())
    optimizer: torch.optim.Optimizer = torch.optim.Adam(
        wrapper.training_module.parameters(), lr=0.01
    )
    if use_fabric:
        fabric = Fabric(accelerator="cpu", devices=1)
        optimizer = fabric.setup_optimizers(optimizer)
    wrapper.attach_optimizer(optimizer)

    for _ in range(5):
        reference.train()
        torch.manual_seed(1)
        adam_step(reference, reference_opt, x)
        torch.manual_seed(1)
        adam_step(wrapper.training_module, optimizer, x)
        wrapper.sync()
        # The next step must not touch what the inference thread now reads.
        inference_values = params(wrapper._published.module)
        torch.manual_seed(2)
        adam_step(wrapper.training_module, optimizer, x)
        for before, after in zip(inference_values, wrapper._published.module.parameters()):
            assert torch.equal(before, after)
        torch.manual_seed(2)
        adam_step(reference, reference_opt, x)

    for got, want in zip(wrapper.training_module.parameters(), reference.parameters()):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    raw = getattr(optimizer, "optimizer", optimizer)
    owned = set(wrapper.training_module.parameters())
    assert all(p in owned for group in raw.param_groups for p in group["params"])
    assert set(raw.state) <= owned
    assert all(int(raw.state[p]["step"]) == 10 for p in owned)


def test_only_the_training_thread_may_sync_or_touch_the_training_copy() -> None:
    wrapper = ModelWrapper("encoder", make_model())
    errors: list[BaseException] = []

    def inference_thread() -> None:
        for action in (wrapper.sync, lambda: wrapper.training_module):
            try:
                action()
            except OwnershipError as error:
                errors.append(error)

    thread = threading.Thread(target=inference_thread, name="inference")
    thread.start()
    thread.join(5)
    assert len(errors) == 2
    assert "models.encoder.sync" in str(errors[0])
    assert "models.encoder.training_module" in str(errors[1])


@pytest.mark.timeout(60)
def test_stress_inference_never_sees_a_half_copied_model() -> None:
    """The inference thread calls in a loop while training publishes versions.

    Version v sets every weight to v, so a torn read (parameters from two versions)
    shows up as a mixed output.
    """
    layer = nn.Linear(64, 64, bias=False)
    nn.init.zeros_(layer.weight)
    wrapper = ModelWrapper("m", layer)
    x = torch.ones(1, 64)
    seen: list[float] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def inference() -> None:
        try:
            while not stop.is_set():
                out = wrapper.inference(x)
                values = out.unique()
                assert values.numel() == 1, f"torn read: {values}"
                seen.append(float(values[0]) / 64)
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=inference, name="inference")
    thread.start()
    version = 0
    deadline = time.monotonic() + 30
    try:
        while (version < 300 or len(seen) < 300) and not errors:
            assert time.monotonic() < deadline, (version, len(seen))
            version += 1
            with torch.no_grad():
                wrapper.training_module.weight.fill_(version)
            wrapper.sync()
            assert torch.equal(wrapper.training_module.weight, torch.full((64, 64), float(version)))
            time.sleep(0)  # let the inference thread in between syncs too
    finally:
        stop.set()
        thread.join(10)
    assert not errors, errors
    assert seen == sorted(seen), "versions only move forward"
    assert len(set(seen)) > 1, "the inference thread saw published versions change"


def test_deep_copy_is_independent() -> None:
    model = make_model()
    wrapper = ModelWrapper("m", copy.deepcopy(model))
    with torch.no_grad():
        wrapper.training_module[0].weight.zero_()
    assert not torch.equal(wrapper._published.module[0].weight, wrapper.training_module[0].weight)


class Gate(nn.Module):
    """Adds a parameter; while ``hold`` is set, a forward pass waits for ``release``."""

    hold = threading.Event()
    entered = threading.Event()
    release = threading.Event()

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if Gate.hold.is_set():
            Gate.hold.clear()
            Gate.entered.set()
            assert Gate.release.wait(5)
        return x + self.w


def test_sync_switches_at_once_but_copies_only_after_running_passes_finish() -> None:
    wrapper = ModelWrapper("gate", Gate())
    with torch.no_grad():
        wrapper.training_module.w.fill_(1.0)
    events: list[tuple[str, float]] = []
    x = torch.zeros(1)

    def slow_reader() -> None:  # a forward pass in progress on the published copy
        events.append(("slow", float(wrapper.inference(x))))

    def fresh_reader() -> None:  # a call made after the switch
        while wrapper._published.module.w.item() != 1.0:
            time.sleep(0.001)
        events.append(("fresh", float(wrapper.inference(x))))
        Gate.release.set()

    Gate.hold.set()
    Gate.entered.clear()
    Gate.release.clear()
    slow = threading.Thread(target=slow_reader, name="inference")
    slow.start()
    assert Gate.entered.wait(5)
    fresh = threading.Thread(target=fresh_reader, name="inference-2")
    fresh.start()
    wrapper.sync()  # returns only once the slow pass has left the old copy
    events.append(("synced", wrapper.training_module.w.item()))
    slow.join(5)
    fresh.join(5)
    assert events == [("fresh", 1.0), ("slow", 0.0), ("synced", 1.0)]


def test_the_inference_handle_refuses_writes_clearly() -> None:
    handle = ModelWrapper("encoder", make_model()).inference
    with pytest.raises(ReadOnlyError, match=r"models\.encoder: sync\(\) changes the object"):
        handle.sync()
    with pytest.raises(AttributeError):
        handle.no_such_method()
