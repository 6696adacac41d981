"""Protocol -> py_trees tree, scheduler and reservations, recovery, checkpoints. Core has no rclpy."""
