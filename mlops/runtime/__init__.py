"""Runtimes launch one trial each: a local process group or a Docker container, with the same verbs."""
