"""Web console and the HTTP/WebSocket API (auth, teleop, control lease)."""
