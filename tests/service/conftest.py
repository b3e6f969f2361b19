from sensor_fixtures import mosquitto  # noqa: F401
