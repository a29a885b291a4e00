import torch

from ami.models.parameter_copy import BLOCK, GRAIN, blocks, copy_serially


def test_copies_large_small_and_strided_tensors_exactly() -> None:
    sources = [torch.randn(2 * BLOCK + 3 * GRAIN + 17), torch.randn(4, 5), torch.randn(64, 32).t()]
    targets = [torch.zeros(2 * BLOCK + 3 * GRAIN + 17), torch.zeros(4, 5), torch.zeros(32, 64)]
    calls = []
    copy_serially(targets, sources, before_block=lambda: calls.append(1))
    for target, source in zip(targets, sources):
        assert torch.equal(target, source)
    assert len(calls) == 3 + 2, "three blocks of the large tensor, one per small tensor"


def test_blocks_cover_every_element_once() -> None:
    target, source = torch.zeros(10), torch.arange(10.0)
    pieces = list(blocks([target], [source], size=4))
    assert [piece.numel() for piece, _ in pieces] == [4, 4, 2]
    for piece, origin in pieces:
        piece.copy_(origin)
    assert torch.equal(target, source)


def test_works_on_parameters_that_require_grad() -> None:
    target = torch.nn.Parameter(torch.zeros(2 * GRAIN))
    source = torch.nn.Parameter(torch.ones(2 * GRAIN))
    copy_serially([target], [source])
    assert torch.equal(target.detach(), source.detach())
