from sensor_fixtures import mosquitto, small_detector  # noqa: F401
