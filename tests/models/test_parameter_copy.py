import threading

import torch

from ami.models.parameter_copy import BLOCK, blocks, copy_serially, one_torch_thread


def test_copies_large_small_and_strided_tensors_exactly() -> None:
    sources = [torch.randn(2 * BLOCK + 17), torch.randn(4, 5), torch.randn(64, 32).t()]
    targets = [torch.zeros(2 * BLOCK + 17), torch.zeros(4, 5), torch.zeros(32, 64)]
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
    target = torch.nn.Parameter(torch.zeros(3 * BLOCK))
    source = torch.nn.Parameter(torch.ones(3 * BLOCK))
    copy_serially([target], [source])
    assert torch.equal(target.detach(), source.detach())


def test_copies_on_one_cpu_thread_and_restores_this_threads_count() -> None:
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    other: list[int] = []
    inside = threading.Event()
    leave = threading.Event()

    def other_thread() -> None:
        torch.get_num_threads()
        torch.set_num_threads(3)
        inside.wait(10)
        other.append(torch.get_num_threads())
        leave.set()

    thread = threading.Thread(target=other_thread)
    thread.start()
    try:
        with one_torch_thread():
            assert torch.get_num_threads() == 1
            inside.set()
            assert leave.wait(10)
        assert torch.get_num_threads() == 2
        assert other == [3], "another thread's count is its own"
    finally:
        thread.join(10)
        torch.set_num_threads(previous)
