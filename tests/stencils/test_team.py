"""The engine's team of spinning helpers: the board protocol and `run_team`."""

import threading
import time

import numba
import numpy as np
import pytest
from numba import carray, cfunc, types

import stencils as st
from stencils import _channels, _engine
from stencils import _kernels_team as kt


def _count_calls(address):
    """A team entry point: adds one to the int64 counter at the block's first word."""
    block = carray(kt.pointer_at(address, np.int64(0)), (1,))
    counter = carray(kt.pointer_at(block[0], np.int64(0)), (1,))
    counter[0] += 1
    return 1


def _fail(address):
    return 0


_COUNT_CALLS = cfunc(types.int64(types.int64))(_count_calls)
_FAIL = cfunc(types.int64(types.int64))(_fail)


@pytest.fixture
def board():
    board = np.zeros(kt.BOARD_WORDS, dtype=np.int64)
    kt.serve(board, 0, 0, 10**12)  # compiled before a test's helper thread needs it
    kt.finish(board, kt.post(board, 0, 0))
    return np.zeros(kt.BOARD_WORDS, dtype=np.int64)


def _spinner(board, slot, spin_cycles):
    """A thread serving slot `slot` until kicked (serving again whenever it returns
    because the OS descheduled it); the kick ends it."""
    def spin():
        kick = board[kt.KICK * kt.LINE]
        while board[kt.KICK * kt.LINE] == kick:
            board[(kt.SLOT + 2 * slot) * kt.LINE] = kt.SPINNING
            kt.serve(board, slot, spin_cycles, 10**12)

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    return thread


def _state(board, slot):
    return board[(kt.SLOT + 2 * slot) * kt.LINE]


def test_a_spinning_helper_runs_each_posted_job_once(board):
    counter = np.zeros(1, dtype=np.int64)
    block = np.array([counter.ctypes.data], dtype=np.int64)
    helper = _spinner(board, 0, 10**12)
    try:
        for job in range(1, 51):
            sequence = kt.post(board, _COUNT_CALLS.address, block.ctypes.data)
            # Give the helper the chance to take the job before it is closed.
            deadline = time.monotonic() + 1.0
            while board[kt.JOB * kt.LINE] & kt.CLOSED == 0 and time.monotonic() < deadline:
                time.sleep(0)
            kt.finish(board, sequence)
            assert counter[0] == job
            assert board[kt.DONE * kt.LINE] == 1
    finally:
        board[kt.KICK * kt.LINE] += 1
        helper.join(5)
    assert not helper.is_alive()
    assert _state(board, 0) == kt.ASLEEP


def test_a_closed_job_is_not_taken(board):
    counter = np.zeros(1, dtype=np.int64)
    block = np.array([counter.ctypes.data], dtype=np.int64)
    sequence = kt.post(board, _COUNT_CALLS.address, block.ctypes.data)
    kt.finish(board, sequence)  # nobody joined: returns at once
    helper = _spinner(board, 0, 10**12)
    time.sleep(0.05)
    board[kt.KICK * kt.LINE] += 1
    helper.join(5)
    assert not helper.is_alive()
    assert counter[0] == 0
    # It saw the closed job: a later wake-up does not take it either.
    assert board[(kt.SLOT + 1) * kt.LINE] == sequence


def test_a_helper_sleeps_after_its_spin_time(board):
    board[(kt.SLOT + 6) * kt.LINE] = kt.SPINNING
    helper = threading.Thread(target=kt.serve, args=(board, 3, 1000, 10**12), daemon=True)
    helper.start()
    helper.join(5)
    assert not helper.is_alive()
    assert _state(board, 3) == kt.ASLEEP


def _direct_case():
    # LeNet's conv2 at batch 64: 'auto' takes the direct algorithm, the one
    # whose helpers run on the team.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 6, 14, 14)).astype(np.float32)
    w = rng.standard_normal((16, 6, 5, 5)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    return x, w, b


def _batch_case():
    # conv2's input gradient: the delta fully correlated with the flipped,
    # channel-transposed kernels; 'auto' takes the batch algorithm.
    rng = np.random.default_rng(1)
    dy = rng.standard_normal((64, 16, 10, 10)).astype(np.float32)
    w = rng.standard_normal((6, 16, 5, 5)).astype(np.float32)
    return dy, w, rng.standard_normal(6).astype(np.float32)


def _columns_case():
    # LeNet's conv1 at batch 64, 'same' padding: 'auto' takes the columns algorithm.
    rng = np.random.default_rng(3)
    x = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
    w = rng.standard_normal((6, 1, 5, 5)).astype(np.float32)
    return x, w, rng.standard_normal(6).astype(np.float32)


def _serial(x, w, b, padding=0):
    return st.correlate_channels(x, w, bias=b, padding=padding, parallel=False)


def _calls_until_a_helper_joins(call, expected, seconds=10.0):
    """``call()`` on 2 threads, each result checked, until a helper takes part in
    one (a busy machine sends the team away for a while: that is undone before
    each).  The `seconds` count from the end of the first call, which may compile
    (11 s with bounds checks on an empty cache, on a Zen 3 core)."""
    threads = numba.get_num_threads()
    numba.set_num_threads(2)
    try:
        deadline = None
        while deadline is None or time.monotonic() < deadline:
            _engine._TEAM._backoff_until = 0.0
            if _engine._HELPERS.board is not None:  # no count left from an earlier call
                _engine._HELPERS.board[kt.DONE * kt.LINE] = 0
            np.testing.assert_array_equal(call(), expected)
            board = _engine._HELPERS.board
            if board is not None and board[kt.DONE * kt.LINE] > 0:
                return True
            if deadline is None:
                deadline = time.monotonic() + seconds
        return False
    finally:
        numba.set_num_threads(threads)


def _team_calls_until_a_helper_joins(x, w, b, expected, padding=0):
    return _calls_until_a_helper_joins(
        lambda: st.correlate_channels(x, w, bias=b, padding=padding, parallel=True), expected)


@pytest.mark.parametrize("case, padding, algorithm",
                         [(_direct_case, 0, "direct"), (_batch_case, 4, "batch"),
                          (_columns_case, 2, "columns")])
def test_run_team_runs_each_team_kernel_with_the_helpers(case, padding, algorithm):
    x, w, b = case()
    geometry = _channels._geometry(x.shape, w.shape, padding, 1)
    assert _channels.choose_algorithm(geometry) == algorithm
    expected = _serial(x, w, b, padding)
    assert _team_calls_until_a_helper_joins(x, w, b, expected, padding=padding)


def test_tier_1_runs_on_the_team_and_matches_tier_0():
    rng = np.random.default_rng(2)
    image = rng.standard_normal((256, 300)).astype(np.float32)
    image[7, 9], image[100, 0] = np.nan, -0.0
    kernel = rng.standard_normal((5, 5)).astype(np.float32)
    with st.config(engine="interpreter"):
        expected = st.correlate(image, kernel, mode="reflect")
    before = _engine.stats["tier1"]
    with st.config(engine="generated", compile="sync"):
        assert _calls_until_a_helper_joins(
            lambda: st.correlate(image, kernel, mode="reflect"), expected)
    assert _engine.stats["tier1"] > before


@pytest.mark.parametrize("spin_us", [0, 300])
def test_threads_calling_at_once_get_the_serial_results(spin_us):
    x, w, b = _direct_case()
    expected = _serial(x, w, b)
    results, errors = [], []

    def calls():
        try:
            for _ in range(10):
                results.append(st.correlate_channels(x, w, bias=b,
                                                     parallel=True))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    with st.config(spin_us=spin_us):
        threads = [threading.Thread(target=calls) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert not errors
    assert len(results) == 40
    for got in results:
        np.testing.assert_array_equal(got, expected)


def test_no_spinning_leaves_the_board_alone():
    x, w, b = _direct_case()
    expected = _serial(x, w, b)
    assert _team_calls_until_a_helper_joins(x, w, b, expected)  # the board exists
    board = _engine._HELPERS.board
    before = board[kt.JOB * kt.LINE] >> 8
    threads = numba.get_num_threads()
    numba.set_num_threads(2)
    try:
        with st.config(spin_us=0):
            got = st.correlate_channels(x, w, bias=b, parallel=True)
    finally:
        numba.set_num_threads(threads)
    np.testing.assert_array_equal(got, expected)
    assert board[kt.JOB * kt.LINE] >> 8 == before


def test_spin_us_is_checked():
    with pytest.raises(ValueError, match="spin_us"):
        with st.config(spin_us=-1):
            pass


def test_a_team_backing_off_runs_calls_alone_then_comes_back(monkeypatch):
    x, w, b = _direct_case()
    expected = _serial(x, w, b)
    threads = numba.get_num_threads()
    numba.set_num_threads(2)
    try:
        st.correlate_channels(x, w, bias=b, parallel=True)
        board = _engine._HELPERS.board
        _engine._TEAM._backoff_until = time.monotonic() + 60
        sequence = board[kt.JOB * kt.LINE] >> 8
        with monkeypatch.context() as patch:
            # Alone: neither the board nor the helpers' queue.
            patch.setattr(_engine, "run_parallel", None)
            for _ in range(5):
                np.testing.assert_array_equal(
                    st.correlate_channels(x, w, bias=b, parallel=True), expected)
        assert board[kt.JOB * kt.LINE] >> 8 == sequence
    finally:
        _engine._TEAM._backoff_until = 0.0
        numba.set_num_threads(threads)
    assert _team_calls_until_a_helper_joins(x, w, b, expected)
    assert board[kt.JOB * kt.LINE] >> 8 > sequence


@pytest.mark.parametrize("spin_us", [0, 300])
def test_a_failing_entry_point_has_the_call_computed_serially(spin_us):
    computed = []
    with st.config(spin_us=spin_us):
        for _ in range(3):
            _engine._TEAM._backoff_until = 0.0
            _engine.run_team(lambda: _FAIL.address, np.zeros(1, dtype=np.int64),
                             lambda: computed.append(True), 2)
    assert computed == [True] * 3


def test_one_thread_runs_the_entry_point_alone():
    counter = np.zeros(1, dtype=np.int64)
    block = np.array([counter.ctypes.data], dtype=np.int64)
    computed = []
    for _ in range(3):
        _engine.run_team(lambda: _COUNT_CALLS.address, block, lambda: computed.append(True), 1)
    assert counter[0] == 3
    assert computed == []
