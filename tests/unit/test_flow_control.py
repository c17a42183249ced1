"""stream/app.py's FlowControl: a record delivered while the flow runs stays in its buffer."""

from __future__ import annotations

from mode.utils.queues import FlowControlEvent, ThrowableQueue

from stream.app import FlowControl, app


def recovery_sequence(flow_control: FlowControlEvent) -> list[str]:
    """What a stream buffer holds after the steps of a rebalance and its recovery.

    Faust suspends and clears the flow when the rebalance starts, resumes it
    when the restore starts, and resumes it again once recovery has resumed
    and sought the stream partitions (`Recovery.on_recovery_completed`). A
    record of the new assignment is fetched and delivered in between.
    """
    buffer = ThrowableQueue(maxsize=10, flow_control=flow_control, clear_on_resume=True)
    flow_control.resume()
    buffer.put_nowait("before the rebalance")
    flow_control.suspend()
    flow_control.clear()
    buffer.put_nowait("left by the rebalance")  # as a put racing the suspension
    flow_control.resume()  # the restore starts
    buffer.put_nowait("fetched after the seek")
    flow_control.resume()  # recovery completed
    return [buffer.get_nowait() for _ in range(buffer.qsize())]


def test_the_second_resume_keeps_what_the_running_flow_delivered() -> None:
    assert recovery_sequence(FlowControl()) == ["fetched after the seek"]
    # Faust's own clears it: the record was lost until the next rebalance.
    assert recovery_sequence(FlowControlEvent()) == []


def test_resuming_a_suspended_flow_still_clears_the_buffers() -> None:
    flow_control = FlowControl()  # suspended until first resumed, as Faust's
    buffer = ThrowableQueue(maxsize=10, flow_control=flow_control, clear_on_resume=True)
    buffer.put_nowait("stale")
    assert not flow_control.is_active()
    flow_control.resume()
    assert flow_control.is_active() and buffer.empty()


def test_the_app_s_stream_buffers_are_under_this_flow_control() -> None:
    assert isinstance(app.flow_control, FlowControl)
    buffer = app.FlowControlQueue(maxsize=10, clear_on_resume=True)
    assert buffer in app.flow_control._queues
