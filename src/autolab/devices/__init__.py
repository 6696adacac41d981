"""Arm kinematics and planning, device state machines, serial drivers and emulators. No rclpy."""
