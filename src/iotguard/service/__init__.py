"""The long-running sensor: capture, flows, detection, response and telemetry wired together, with the device
inventory, the REST API, the web dashboard and Prometheus metrics."""
