"""Action feedback throttling: every phase change goes out, repeats at most once per period."""

from __future__ import annotations

from autolab.nodes.feedback import FeedbackGate


def test_phase_changes_always_pass_and_repeats_are_throttled():
    now = [0]
    gate = FeedbackGate(period_s=50, clock=lambda: now[0])  # milliseconds here, for exact arithmetic
    sent = []
    for i, phase in enumerate(["approach"] * 20 + ["grasp"] + ["lift"] * 5):
        now[0] = i * 5  # a 200 Hz controller
        if gate.due(phase):
            sent.append((now[0], phase))
    # 20 approach samples become 2 (one per 50 ms); the one-sample grasp phase is not lost.
    assert sent == [(0, "approach"), (50, "approach"), (100, "grasp"), (105, "lift")]
