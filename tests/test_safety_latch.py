"""The safety latch's rules, without ROS."""

from __future__ import annotations

import pytest

from autolab.devices.safety import ResetRefused, SafetyLatch, SafetyStatus


def test_estop_latches_until_explicit_reset():
    latch = SafetyLatch()
    assert latch.snapshot().motion_allowed
    snap = latch.estop("operator", "plate dropped")
    assert snap.status == SafetyStatus.ESTOP and not snap.motion_allowed
    assert (snap.source, snap.reason) == ("operator", "plate dropped")
    assert latch.reset("operator").motion_allowed


def test_reset_is_refused_while_an_interlock_is_open():
    latch = SafetyLatch()
    latch.estop("operator", "x")
    latch.set_interlock("door", True)
    with pytest.raises(ResetRefused, match="door"):
        latch.reset("operator")
    latch.set_interlock("door", False)
    assert latch.reset("operator").motion_allowed


def test_interlock_pauses_motion_without_latching():
    latch = SafetyLatch()
    snap = latch.set_interlock("door", True)
    assert snap.status == SafetyStatus.INTERLOCK and not snap.motion_allowed and not snap.estop_latched
    assert latch.set_interlock("door", False).motion_allowed


def test_fault_latches_the_estop():
    latch = SafetyLatch()
    latch.set_fault("watchdog:arm", True)
    latch.set_fault("watchdog:arm", False)
    snap = latch.snapshot()
    assert snap.estop_latched and snap.reason == "fault: watchdog:arm"


def test_every_change_bumps_the_sequence_once():
    latch = SafetyLatch()
    s0 = latch.snapshot().sequence
    latch.estop("a", "b")
    latch.estop("a", "b")
    assert latch.snapshot().sequence == s0 + 1
