"""The `autolab` command line."""
