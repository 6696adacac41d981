"""Thin rclpy nodes, one per module. Domain logic lives in the layers below."""
