# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""OutputStage: order, back-pressure, no loss, errors on the worker, drain, stop while busy.

Jobs are gated by events, so every check waits on a condition (deadlines sized for a busy
2-core machine), never on how long something took.
"""

from __future__ import annotations

import threading

import pytest

from vggt4d_ros.runtime.output_stage import OutputStage

#: Seconds any wait here may take on a loaded machine before the test calls it a hang.
DEADLINE_S = 60.0


class Gate:
    """A job that records its name, then blocks until opened."""

    def __init__(self, log: list[str], name: str) -> None:
        self.log = log
        self.name = name
        self.started = threading.Event()
        self.opened = threading.Event()

    def __call__(self) -> None:
        self.started.set()
        assert self.opened.wait(DEADLINE_S), f'{self.name} was never opened'
        self.log.append(self.name)


def submit_in_thread(stage: OutputStage, job) -> tuple[threading.Thread, threading.Event]:
    """Submit from another thread; returns it and an event set once ``submit`` returned."""
    returned = threading.Event()

    def run() -> None:
        stage.submit(job)
        returned.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, returned


def test_jobs_run_in_submission_order_and_none_is_lost():
    stage = OutputStage(depth=2)
    done: list[int] = []
    for index in range(200):
        stage.submit(lambda i=index: done.append(i))
    assert stage.drain(DEADLINE_S)
    assert done == list(range(200))
    assert stage.stats.jobs == 200
    stage.close(DEADLINE_S)
    assert not stage.alive


def test_submit_blocks_while_the_queue_is_full_and_resumes_when_room():
    stage = OutputStage(depth=1)
    log: list[str] = []
    first, second, third = Gate(log, 'a'), Gate(log, 'b'), Gate(log, 'c')
    stage.submit(first)
    assert first.started.wait(DEADLINE_S)  # running: the queue is empty again
    stage.submit(second)  # waits in the queue (depth 1)
    thread, returned = submit_in_thread(stage, third)
    # Full: the third submit must not return while the first job runs.
    assert not returned.wait(0.2)
    assert stage.pending == 2
    first.opened.set()
    assert returned.wait(DEADLINE_S)  # the second started: room for the third
    assert stage.stats.waits == 1 and stage.stats.wait_s > 0
    second.opened.set()
    third.opened.set()
    assert stage.drain(DEADLINE_S)
    thread.join(DEADLINE_S)
    assert log == ['a', 'b', 'c']
    stage.close(DEADLINE_S)


def fail() -> None:
    raise ValueError('window 1 failed')


def wait_for(condition, timeout_s: float = DEADLINE_S) -> bool:
    """Poll ``condition`` until it holds or ``timeout_s`` passed."""
    deadline = threading.Event()
    timer = threading.Timer(timeout_s, deadline.set)
    timer.start()
    try:
        while not condition():
            if deadline.wait(0.01):
                return condition()
        return True
    finally:
        timer.cancel()


def test_job_error_is_raised_once_on_the_submitting_thread_and_later_jobs_still_run():
    stage = OutputStage(depth=1)
    done: list[int] = []
    stage.submit(lambda: done.append(0))
    stage.submit(fail)
    with pytest.raises(ValueError, match='window 1 failed'):
        stage.drain(DEADLINE_S)
    stage.submit(lambda: done.append(2))  # reported once: not raised again
    assert stage.drain(DEADLINE_S)
    assert done == [0, 2]
    assert stage.stats.errors == 1
    stage.close(DEADLINE_S)


def test_submit_accepts_its_job_before_raising_an_earlier_error():
    stage = OutputStage(depth=1)
    done: list[int] = []
    stage.submit(fail)
    assert wait_for(lambda: stage.stats.errors == 1)
    with pytest.raises(ValueError, match='window 1 failed'):
        stage.submit(lambda: done.append(1))
    assert stage.drain(DEADLINE_S)
    assert done == [1]  # the job of the raising submit ran anyway
    stage.close(DEADLINE_S)


def test_close_while_busy_runs_what_was_accepted_then_ends_the_thread():
    stage = OutputStage(depth=1)
    log: list[str] = []
    busy, queued = Gate(log, 'busy'), Gate(log, 'queued')
    stage.submit(busy)
    assert busy.started.wait(DEADLINE_S)
    stage.submit(queued)
    closer = threading.Thread(target=stage.close, daemon=True)
    closer.start()
    closer.join(0.2)
    assert closer.is_alive()  # waits for the running job
    busy.opened.set()
    queued.opened.set()
    closer.join(DEADLINE_S)
    assert not closer.is_alive() and not stage.alive
    assert log == ['busy', 'queued']
    with pytest.raises(RuntimeError, match='closed'):
        stage.submit(lambda: None)
    stage.close()  # idempotent


def test_close_reports_an_error_not_reported_yet():
    stage = OutputStage()

    def fail() -> None:
        raise KeyError('late')

    stage.submit(fail)
    with pytest.raises(KeyError, match='late'):
        stage.close(DEADLINE_S)
    assert not stage.alive


def test_depth_must_be_positive():
    with pytest.raises(ValueError, match='depth'):
        OutputStage(depth=0)
