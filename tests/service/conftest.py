from sensor_fixtures import lab_attack, lab_detector, mosquitto, small_detector  # noqa: F401
