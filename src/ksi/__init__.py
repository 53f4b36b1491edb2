"""KSI: Kubernetes workloads inside Slurm jobs, on a temporary Kind cluster per job."""

__version__ = "0.1.0"
