"""Application-protocol encoders (bytes on the wire) used by the simulated devices and attacks."""
