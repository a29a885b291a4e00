"""The model gate: generations, snapshots, the switch, optimizers and what may cross."""

import gc
import threading
import time
import weakref

import pytest
import torch
from lightning_fabric import Fabric
from torch import nn

from ami.models import BoundOptimizer, ModelGate, inference_method
from ami.sharing import OwnershipError, ReadOnlyError

DEADLINE = 60.0


def make_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Dropout(0.5), nn.Linear(8, 2))


def loss_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor) -> None:
    optimizer.zero_grad()
    model(x).pow(2).sum().backward()
    optimizer.step()


def params(module: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def published(gate: ModelGate, name: str) -> nn.Module:
    return gate._current.models[name].module


def test_inference_copy_is_eval_without_grad_and_runs_in_inference_mode() -> None:
    gate = ModelGate({"m": make_model()})
    inference = published(gate, "m")
    assert not inference.training
    assert all(not p.requires_grad for p in inference.parameters())
    assert gate.training_module("m").training
    assert all(p.requires_grad for p in gate.training_module("m").parameters())
    with gate.inference.snapshot() as models:
        out = models["m"](torch.ones(3, 4))
        assert out.is_inference()
        assert torch.equal(out, models["m"](torch.ones(3, 4))), "eval mode: dropout off"


def test_publish_switches_references_and_publishes_training_values() -> None:
    gate = ModelGate({"m": make_model()})
    trained = gate.training_module("m")
    old_inference = published(gate, "m")
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(1.0)
    expected = params(trained)
    assert gate.publish() == 1
    assert published(gate, "m") is trained, "the trained module itself is published"
    assert gate.training_module("m") is old_inference, "the old inference copy now trains"
    for out, back, value in zip(
        published(gate, "m").parameters(), gate.training_module("m").parameters(), expected
    ):
        assert torch.equal(out, value)
        assert torch.equal(back, value)
        assert out.data_ptr() != back.data_ptr()
    assert gate.training_module("m").training and not published(gate, "m").training


def test_requires_grad_comes_from_the_training_copy_at_each_publication() -> None:
    """Before: flags captured at construction were re-applied at every sync."""
    model = make_model()
    model[0].weight.requires_grad_(False)
    gate = ModelGate({"m": model})
    gate.publish()
    assert [p.requires_grad for p in gate.training_module("m").parameters()] == [
        False,
        True,
        True,
        True,
    ], "a frozen layer stays frozen"
    gate.training_module("m")[0].weight.requires_grad_(True)  # the trainer unfreezes it
    gate.publish()
    gate.publish()
    assert all(p.requires_grad for p in gate.training_module("m").parameters())
    assert all(not p.requires_grad for p in published(gate, "m").parameters())


def train_with_publications(
    gate: ModelGate, optimizer: torch.optim.Optimizer | BoundOptimizer, x: torch.Tensor
) -> None:
    """Five rounds of two steps with a publication between; checks the published copy."""
    bound = optimizer if isinstance(optimizer, BoundOptimizer) else None
    for _ in range(5):
        opt = bound.optimizer if bound else optimizer
        assert isinstance(opt, torch.optim.Optimizer)
        torch.manual_seed(1)
        loss_step(gate.training_module("m"), opt, x)
        gate.publish()
        inference_values = params(published(gate, "m"))
        opt = bound.optimizer if bound else opt
        assert isinstance(opt, torch.optim.Optimizer)
        torch.manual_seed(2)
        loss_step(gate.training_module("m"), opt, x)
        for before, after in zip(inference_values, published(gate, "m").parameters()):
            assert torch.equal(before, after), "a step after a switch touched the published copy"


def reference_training(optimizer_type: type, x: torch.Tensor, **kwargs: float) -> nn.Module:
    reference = make_model()
    optimizer = optimizer_type(reference.parameters(), **kwargs)
    for _ in range(5):
        for seed in (1, 2):
            torch.manual_seed(seed)
            loss_step(reference, optimizer, x)
    return reference


@pytest.mark.parametrize("use_fabric", [False, True])
def test_a_rebindable_optimizer_follows_the_training_copy_and_keeps_its_state(
    use_fabric: bool,
) -> None:
    """Training with publications between steps matches training without, exactly."""
    x = torch.randn(16, 4)
    gate = ModelGate({"m": make_model()})
    optimizer: torch.optim.Optimizer = torch.optim.Adam(
        gate.training_module("m").parameters(), lr=0.01
    )
    if use_fabric:
        optimizer = Fabric(accelerator="cpu", devices=1).setup_optimizers(optimizer)
    bound = BoundOptimizer(optimizer)
    gate.attach_optimizer(bound)
    train_with_publications(gate, bound, x)
    reference = reference_training(torch.optim.Adam, x, lr=0.01)
    for got, want in zip(gate.training_module("m").parameters(), reference.parameters()):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert bound.rebuilds == 0 and bound.optimizer is optimizer, "rebound in place"


class CachingSGD(torch.optim.Optimizer):
    """A user optimizer that keeps its own list of parameters, as many do."""

    def __init__(self, params: list[nn.Parameter], lr: float = 0.05) -> None:
        params = list(params)
        super().__init__(params, {"lr": lr})
        self.cached = params

    @torch.no_grad()
    def step(self, closure: object = None) -> None:  # type: ignore[override]
        lr = self.param_groups[0]["lr"]
        for param in self.cached:
            if param.grad is not None:
                param.add_(param.grad, alpha=-lr)


def test_an_unknown_optimizer_is_rebuilt_so_it_never_steps_the_published_copy() -> None:
    """Before: only param_groups and state were re-pointed; the cache kept the old copy."""
    x = torch.randn(16, 4)
    gate = ModelGate({"m": make_model()})
    bound = BoundOptimizer(
        CachingSGD(list(gate.training_module("m").parameters())), rebuild=CachingSGD
    )
    gate.attach_optimizer(bound)
    train_with_publications(gate, bound, x)
    assert bound.rebuilds == 5
    reference = make_model()
    optimizer = CachingSGD(list(reference.parameters()))
    for _ in range(5):
        for seed in (1, 2):
            torch.manual_seed(seed)
            loss_step(reference, optimizer, x)
    for got, want in zip(gate.training_module("m").parameters(), reference.parameters()):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_lbfgs_is_rebuilt_with_its_state_and_keeps_off_the_published_copy() -> None:
    x = torch.randn(16, 4)
    gate = ModelGate({"m": make_model()})

    def lbfgs(parameters: list[nn.Parameter]) -> torch.optim.Optimizer:
        return torch.optim.LBFGS(parameters, lr=0.5, max_iter=3, history_size=4)

    bound = BoundOptimizer(lbfgs(list(gate.training_module("m").parameters())), rebuild=lbfgs)
    gate.attach_optimizer(bound)
    reference = make_model()
    reference_optimizer = lbfgs(list(reference.parameters()))

    def step(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            loss = model(x).pow(2).sum()
            loss.backward()
            return loss

        optimizer.step(closure)

    for _ in range(4):
        gate.training_module("m").eval()  # dropout off: LBFGS needs a deterministic loss
        reference.eval()
        step(gate.training_module("m"), bound.optimizer)
        step(reference, reference_optimizer)
        gate.publish()
        frozen = params(published(gate, "m"))
        gate.training_module("m").eval()
        step(gate.training_module("m"), bound.optimizer)
        step(reference, reference_optimizer)
        for before, after in zip(frozen, published(gate, "m").parameters()):
            assert torch.equal(before, after)
    assert bound.rebuilds == 4
    for got, want in zip(gate.training_module("m").parameters(), reference.parameters()):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_an_optimizer_that_cannot_be_kept_on_its_copy_is_refused() -> None:
    model = make_model()
    with pytest.raises(TypeError, match="CachingSGD may keep parameter references"):
        BoundOptimizer(CachingSGD(list(model.parameters())))


def test_models_that_share_a_tensor_are_refused_naming_both() -> None:
    trunk = nn.Linear(4, 4)
    encoder = nn.Sequential(trunk, nn.Linear(4, 2))
    dynamics = nn.Sequential(trunk, nn.Linear(4, 3))
    with pytest.raises(ValueError, match=r"models 'encoder' and 'dynamics' share a tensor: "):
        ModelGate({"encoder": encoder, "dynamics": dynamics})
    embedding = nn.Embedding(5, 4)
    head = nn.Linear(4, 5, bias=False)
    head.weight = embedding.weight  # a tied embedding across two models
    with pytest.raises(ValueError, match=r"encoder\.weight is stored in the same memory as head"):
        ModelGate({"encoder": embedding, "head": head})


def test_a_tied_weight_inside_one_model_survives_publications() -> None:
    embedding = nn.Embedding(5, 4)
    model = nn.ModuleDict({"embed": embedding, "out": nn.Linear(4, 5, bias=False)})
    model["out"].weight = embedding.weight
    gate = ModelGate({"m": model})
    gate.publish()
    gate.publish()
    training = gate.training_module("m")
    assert training["out"].weight is training["embed"].weight
    copy = published(gate, "m")
    assert copy["out"].weight is copy["embed"].weight


def test_only_the_writer_publishes_or_touches_the_training_copy() -> None:
    gate = ModelGate({"encoder": make_model()})
    errors: list[BaseException] = []

    def inference_thread() -> None:
        for action in (gate.publish, lambda: gate.training_module("encoder")):
            try:
                action()
            except OwnershipError as error:
                errors.append(error)

    thread = threading.Thread(target=inference_thread, name="inference")
    thread.start()
    thread.join(DEADLINE)
    assert len(errors) == 2
    assert "models.publish" in str(errors[0])
    assert "models.training_module('encoder')" in str(errors[1])


class Recurrent(nn.Module):
    """A model with a declared inference method, and a forward that leaks a parameter."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(3, 2))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return x @ self.weight, self.weight[0], self.weight

    @inference_method
    def initial_hidden(self, batch_size: int) -> torch.Tensor:
        return torch.zeros(batch_size, 2)

    def undeclared(self) -> torch.Tensor:
        return self.weight


def test_the_inference_side_runs_only_forward_and_declared_methods() -> None:
    """Before: call("train"), call("load_state_dict"), call("parameters") all went through."""
    gate = ModelGate({"dynamics": Recurrent()})
    with gate.inference.snapshot() as models:
        dynamics = models["dynamics"]
        assert dynamics.initial_hidden(2).shape == (2, 2)
        for name in ("train", "load_state_dict", "parameters", "state_dict", "undeclared", "to"):
            with pytest.raises(ReadOnlyError, match=rf"models\.dynamics: '{name}' is not an"):
                getattr(dynamics, name)
        with pytest.raises(ReadOnlyError, match="thread 'MainThread' writes it"):
            dynamics.train()
        with pytest.raises(KeyError, match=r"no model named 'nope'; the models are \['dynamics'\]"):
            models["nope"]
    assert not published(gate, "dynamics").training, "nothing switched the copy to train mode"
    with pytest.raises(ReadOnlyError, match="closed snapshot"):
        dynamics(torch.ones(1, 3))
    with pytest.raises(ReadOnlyError, match=r"models: publish\(\) changes the object"):
        gate.inference.publish()


def test_outputs_never_share_memory_with_a_published_parameter() -> None:
    """Before: a view of a parameter became, after the next sync, a view of the training copy."""
    gate = ModelGate({"m": Recurrent()})
    with gate.inference.snapshot() as models:
        product, row, weight = models["m"](torch.ones(1, 3))
    storages = {p.untyped_storage().data_ptr() for p in published(gate, "m").parameters()}
    for tensor in (row, weight):
        assert tensor.untyped_storage().data_ptr() not in storages
    gate.publish()  # the copy the agent read becomes the training copy...
    with torch.no_grad():
        gate.training_module("m").weight.fill_(7.0)  # ...and the optimizer steps it
    assert torch.equal(row, torch.ones(2)) and torch.equal(weight, torch.ones(3, 2))
    assert torch.equal(product, torch.full((1, 2), 3.0))


class Constant(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.zeros(64, 64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.value


@pytest.mark.timeout(120)
def test_stress_a_snapshot_sees_one_generation_of_models_published_together() -> None:
    """Generation v sets every weight of both models to v; a step must never mix them.

    Before: each model was published on its own, so one step could read the encoder of
    one generation and the dynamics model of the next.
    """
    gate = ModelGate({"encoder": Constant(), "dynamics": Constant()})
    x = torch.ones(1, 64)
    seen: list[int] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def inference() -> None:
        try:
            while not stop.is_set():
                with gate.inference.snapshot() as models:
                    first = models["encoder"](x).unique()
                    time.sleep(0)  # invite a publication between the two calls
                    second = models["dynamics"](x).unique()
                assert first.numel() == 1 and second.numel() == 1, "torn read within a model"
                assert torch.equal(first, second), f"mixed generations: {first} {second}"
                seen.append(int(first) // 64)
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=inference, name="inference")
    thread.start()
    version = 0
    deadline = time.monotonic() + DEADLINE
    try:
        while (version < 300 or len(seen) < 300) and not errors:
            assert time.monotonic() < deadline, (version, len(seen))
            version += 1
            with torch.no_grad():
                for name in ("encoder", "dynamics"):
                    gate.training_module(name).value.fill_(version)
            assert gate.publish(["encoder", "dynamics"]) == version
            time.sleep(0)
    finally:
        stop.set()
        thread.join(DEADLINE)
    assert not errors, errors
    assert seen == sorted(seen), "generations only move forward"
    assert len(set(seen)) > 1, "the inference thread saw generations change"


class Held(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.w


def test_publication_switches_at_once_but_copies_only_after_open_snapshots_close() -> None:
    gate = ModelGate({"held": Held(), "other": Held()})
    with torch.no_grad():
        gate.training_module("held").w.fill_(1.0)
    x = torch.zeros(1)
    opened, release = threading.Event(), threading.Event()
    results: dict[str, float] = {}

    def slow_reader() -> None:  # a step in progress on generation 0
        with gate.inference.snapshot() as models:
            opened.set()
            assert release.wait(DEADLINE)
            results["slow"] = float(models["held"](x))
            results["slow_version"] = models.version

    reader = threading.Thread(target=slow_reader, name="inference")
    reader.start()
    assert opened.wait(DEADLINE)
    publisher = threading.Thread(target=lambda: gate.publish(["held"]), name="publisher")
    gate.transfer_to(publisher)
    publisher.start()
    deadline = time.monotonic() + DEADLINE
    while gate.version == 0:  # the switch itself does not wait for the reader
        assert time.monotonic() < deadline
        time.sleep(0.001)
    with gate.inference.snapshot() as models:  # a step started after the switch
        results["fresh"] = float(models["held"](x))
        assert models.version == 1
        assert models["held"].version == 1 and models["other"].version == 0
    assert publisher.is_alive(), "the copy back waits for the open snapshot"
    release.set()
    reader.join(DEADLINE)
    publisher.join(DEADLINE)
    assert not publisher.is_alive()
    assert results == {"fresh": 1.0, "slow": 0.0, "slow_version": 0}
    assert gate._training["held"].w.item() == 1.0


def test_a_closed_snapshot_is_freed_at_once_without_the_cyclic_collector() -> None:
    """Full collections pause every thread; a step must not leave cycles behind."""
    gate = ModelGate({"m": Held()})
    gc.collect()
    gc.disable()
    try:
        with gate.inference.snapshot() as models:
            handle = models["m"]
            handle(torch.zeros(1))
            ref = weakref.ref(models)
        del models, handle
        assert ref() is None
    finally:
        gc.enable()


def test_snapshots_are_reentrant_on_one_thread() -> None:
    gate = ModelGate({"m": Held()})
    with gate.inference.snapshot() as outer, gate.inference.snapshot() as inner:
        assert inner is outer
    assert gate._current.readers == 0


def test_model_age_counts_optimizer_steps_and_seconds_since_publication() -> None:
    gate = ModelGate({"m": Held(), "unused": Held()})
    assert gate.inference.ages() == {}
    gate.count_steps(["m"])
    gate.count_steps(["m"])
    gate.publish(["m"])
    for _ in range(3):
        gate.count_steps(["m"])
    with gate.inference.snapshot() as models:
        models["m"](torch.zeros(1))
    ages = gate.inference.ages()
    assert set(ages) == {"m"}, "only the models the step used"
    steps, seconds = ages["m"]
    assert steps == 3
    published_at = gate._current.models["m"].published_at
    assert 0.0 <= seconds <= time.monotonic() - published_at, "seconds since that publication"
    gate.publish(["m"])
    with gate.inference.snapshot() as models:
        models["m"](torch.zeros(1))
    assert gate.inference.ages()["m"][0] == 0, "a fresh copy"


def test_publishing_inside_an_own_snapshot_fails_instead_of_waiting_forever() -> None:
    gate = ModelGate({"m": Held()})
    with gate.inference.snapshot(), pytest.raises(RuntimeError, match="inside a snapshot"):
        gate.publish()
    assert gate.version == 0
