"""Emulators of the serial instruments, each speaking its driver's protocol on a pseudo-terminal."""
