"""simfleet: a simulated AMD GPU fleet on one Linux machine, for testing sglang_rocm.fleet.

Each simulated host is a network namespace on a bridge with its own sshd and dockerd and a
fake ROCm host tree (sysfs/dev/proc) built from a named profile; a local registry serves the
stand-in image. Run `python3 -m simfleet --help` from tests/ (PYTHONPATH=tests).
"""
