"""Response: a YAML policy mapped to audited actions (log, webhook, syslog, MQTT, nftables block, quarantine,
rate limit), safe by default. See ``docs/response.md``."""

from iotguard.respond.engine import ResponseEngine
from iotguard.respond.nft import Nftables
from iotguard.respond.policy import Policy, default_policy, load_policy

__all__ = ["Nftables", "Policy", "ResponseEngine", "default_policy", "load_policy"]
