"""Composition root: the `twinclass` command and the wiring of every package into one server."""
