"""MuJoCo world built from the workcell description; simulated instrument physics. No rclpy."""
