"""NetworkSet: address membership in the site's networks, as detection and the inventory ask it."""

from __future__ import annotations

from iotguard.core.networks import NetworkSet


def test_membership_by_version_and_prefix_and_no_address_is_in_none():
    site = NetworkSet(["10.0.0.0/8", "fc00::/7"], cache=2)
    assert "10.1.2.3" in site and "fd00::1" in site
    assert "11.0.0.1" not in site and "2001:db8::1" not in site and "::ffff:10.0.0.1" not in site
    assert "not-an-address" not in site and "" not in site
    assert "10.1.2.3" in site  # answered again after the bounded cache was cleared
    assert not NetworkSet([]) and NetworkSet(["192.168.0.0/16"])
