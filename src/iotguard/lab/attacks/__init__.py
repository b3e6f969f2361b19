"""Attacks modelled on real IoT threats; each module adds one attack family's traffic and its episodes."""
