import threading

import pytest

from ami.sharing import Owned, OwnershipError, writes


class Counter(Owned):
    def __init__(self) -> None:
        super().__init__("counter")
        self.value = 0

    @writes
    def increment(self) -> int:
        self.value += 1
        return self.value


def run_in_thread(fn, name="other"):
    result: dict[str, object] = {}

    def target() -> None:
        try:
            result["value"] = fn()
        except BaseException as error:
            result["error"] = error

    thread = threading.Thread(target=target, name=name)
    thread.start()
    thread.join(5)
    assert not thread.is_alive()
    return result


def test_creating_thread_writes() -> None:
    counter = Counter()
    assert counter.writer is threading.current_thread()
    assert counter.increment() == 1


def test_other_thread_cannot_write() -> None:
    counter = Counter()
    result = run_in_thread(counter.increment, name="intruder")
    error = result["error"]
    assert isinstance(error, OwnershipError)
    message = str(error)
    assert "counter.increment" in message
    assert "intruder" in message
    assert threading.current_thread().name in message
    assert counter.value == 0


def test_transfer_moves_write_permission() -> None:
    counter = Counter()
    holder: dict[str, threading.Thread] = {}
    ready = threading.Event()
    go = threading.Event()

    def new_writer() -> None:
        holder["thread"] = threading.current_thread()
        ready.set()
        go.wait(5)
        counter.increment()

    thread = threading.Thread(target=new_writer, name="new-writer")
    thread.start()
    ready.wait(5)
    counter.transfer_to(holder["thread"])
    assert counter.writer is holder["thread"]
    with pytest.raises(OwnershipError):
        counter.increment()
    go.set()
    thread.join(5)
    assert counter.value == 1


def test_only_the_writer_can_transfer() -> None:
    counter = Counter()
    result = run_in_thread(lambda: counter.transfer_to(threading.current_thread()))
    assert isinstance(result["error"], OwnershipError)
    assert counter.writer is threading.current_thread()
