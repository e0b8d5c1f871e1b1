"""The allocator setting used while the engines run is scoped and restored; sorted lookups."""

import numpy as np

from reluscope import _memory


def test_reuse_freed_memory_nests_and_restores(monkeypatch):
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(_memory, "_MALLOPT", lambda param, value: calls.append((param, value)))
    with _memory.reuse_freed_memory():
        with _memory.reuse_freed_memory():  # nested: set once
            np.zeros(1 << 20).sum()
        assert len(calls) == 3
    assert dict(calls[3:]) == _memory._DEFAULTS
    assert _memory._depth == 0


def test_reuse_freed_memory_is_a_no_op_without_glibc(monkeypatch):
    monkeypatch.setattr(_memory, "_MALLOPT", None)
    with _memory.reuse_freed_memory():
        pass
    assert _memory._depth == 0


def test_search_sorted_equals_numpy_for_large_and_small_queries():
    from reluscope._kernels.rings import search_sorted

    rng = np.random.default_rng(0)
    keys = np.sort(rng.integers(0, 1000, 5000))
    for size in (10, 20_000):
        queries = rng.integers(-5, 1005, size)
        left, right = search_sorted(keys, queries, sides=("left", "right"))
        assert np.array_equal(left, np.searchsorted(keys, queries, side="left"))
        assert np.array_equal(right, np.searchsorted(keys, queries, side="right"))


def test_the_first_compilation_of_a_reluscope_kernel_logs_one_notice():
    import logging

    from numba.core import event

    from reluscope._kernels.compile_notice import FirstCompileNotice

    class Dispatcher:
        def __init__(self, function):
            self.py_func = function

    def start(function):
        return event.Event("numba:compile", event.EventStatus.START,
                           data={"dispatcher": Dispatcher(function)})

    class Collect(logging.Handler):
        def __init__(self):
            super().__init__(logging.WARNING)
            self.records = []

        def emit(self, record):
            self.records.append(record)

    notice, seen = FirstCompileNotice(), Collect()
    logger = logging.getLogger("reluscope")
    logger.addHandler(seen)
    try:
        notice.notify(start(len))  # not a reluscope function: nothing
        assert not seen.records
        notice.notify(start(FirstCompileNotice.on_start))
        notice.notify(start(FirstCompileNotice.on_start))
    finally:
        logger.removeHandler(seen)
    assert [r.getMessage() for r in seen.records] == [
        "reluscope: compiling the engines' kernels with numba (first run on this machine only, up to a "
        "minute; cached afterwards)"]


def test_numpy_huge_pages_are_off_inside_and_restored_after():
    switch = _memory._SET_HUGEPAGE
    if not callable(switch):
        return  # this NumPy has no such switch: nothing to scope
    original = switch(True)
    try:
        with _memory.reuse_freed_memory():
            assert switch(False) is False  # off inside (reading it back leaves it off)
        assert switch(True) is True  # restored after
    finally:
        switch(original)
