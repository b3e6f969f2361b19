from sensor_fixtures import (  # noqa: F401
    hue_halves,
    lab_attack,
    lab_detector,
    mosquitto,
    short_default,
    small_detector,
)
