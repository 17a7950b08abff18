"""The cluster tests run Ray clusters on this one host: Ray keeps their control traffic on
loopback only when told so before it is imported (see gossipper.cluster.driver)."""

from __future__ import annotations

import os

from gossipper.cluster.driver import LOOPBACK_ONLY_ENV

os.environ.setdefault(LOOPBACK_ONLY_ENV, "0")
