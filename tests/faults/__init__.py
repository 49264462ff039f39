"""Fault matrix: every remote backend, through its real SDK, against fault-injecting servers on 127.0.0.1."""
