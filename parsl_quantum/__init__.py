"""parsl-quantum: Parsl as a first-class runtime for hybrid quantum-HPC work."""

__version__ = "0.1.0"
