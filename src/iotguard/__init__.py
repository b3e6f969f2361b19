"""iotguard: machine-learning intrusion detection and response for IoT networks."""

__version__ = "0.1.0"
