"""Workcell description, labware, samples and lineage, protocols. No rclpy."""
