"""Run store, event documents, MCAP recording, export bundles. No rclpy."""
