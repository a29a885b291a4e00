import torch

from ami.models.parameter_copy import CHUNK, copy_serially


def test_copies_large_small_and_strided_tensors_exactly() -> None:
    sources = [torch.randn(3 * CHUNK + 17), torch.randn(4, 5), torch.randn(64, 32).t()]
    targets = [torch.zeros(3 * CHUNK + 17), torch.zeros(4, 5), torch.zeros(32, 64)]
    copy_serially(targets, sources)
    for target, source in zip(targets, sources):
        assert torch.equal(target, source)


def test_works_on_parameters_that_require_grad() -> None:
    target = torch.nn.Parameter(torch.zeros(2 * CHUNK))
    source = torch.nn.Parameter(torch.ones(2 * CHUNK))
    copy_serially([target], [source])
    assert torch.equal(target.detach(), source.detach())
