"""Fault-injection suite (issue 6): see README.md in this folder for every case."""
