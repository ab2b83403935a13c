import os
import signal
import sys

import pytest

from innreg.errors import StopSignal, raise_if_stopped, stop_signals_interrupt

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")


def test_stop_signals_raise_where_the_main_thread_is():
    for signum in (signal.SIGTERM, signal.SIGINT):
        with pytest.raises(StopSignal) as stopped, stop_signals_interrupt():
            os.kill(os.getpid(), signum)
            sum(range(10))  # the handler runs between two bytecodes
        assert stopped.value.signum == signum and isinstance(stopped.value, KeyboardInterrupt)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # restored


def test_a_stop_lost_in_a_finalizer_is_raised_by_the_next_check(lose_a_stop, capfd):
    with stop_signals_interrupt():
        raise_if_stopped()  # nothing received: nothing raised
        lose_a_stop()  # Python drops the handler's exception: the run goes on
        with pytest.raises(StopSignal) as stopped:
            raise_if_stopped()
    assert stopped.value.signum == signal.SIGTERM
    assert capfd.readouterr().err == ""  # not printed as "Exception ignored in"
    raise_if_stopped()  # forgotten once the outermost context ends


def test_other_exceptions_of_finalizers_are_still_reported():
    class Failing:
        def __del__(self):
            raise ValueError("from a finalizer")

    seen = []
    hook, sys.unraisablehook = sys.unraisablehook, seen.append
    try:
        with stop_signals_interrupt():
            Failing()
    finally:
        sys.unraisablehook = hook
    assert [type(info.exc_value) for info in seen] == [ValueError]


def test_a_nested_context_keeps_the_outer_ones_stop(lose_a_stop):
    with stop_signals_interrupt():
        with stop_signals_interrupt():
            lose_a_stop()
        with pytest.raises(StopSignal):
            raise_if_stopped()
