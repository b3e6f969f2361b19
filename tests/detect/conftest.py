from sensor_fixtures import hue_halves, short_default  # noqa: F401
