"""The heartbeat thread that keeps a lease (a trial's or a confirmation run's) alive while it trains."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from storage import StoreError

logger = logging.getLogger(__name__)


class Heartbeat(threading.Thread):
    """Calls ``renew`` every ``every_s`` seconds until ``done`` is set.

    ``renew`` returns ``False`` once the lease is gone (expired and handed to another worker): then ``lost`` is
    set and the thread ends, so the training loop stops at its next epoch. A database blip is logged and retried
    until the lease runs out.
    """

    def __init__(self, renew: Callable[[], bool], every_s: float, lost: threading.Event, what: str):
        super().__init__(daemon=True, name=f"heartbeat {what}")
        self.renew, self.every_s, self.lost, self.what = renew, every_s, lost, what
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.every_s):
            try:
                if not self.renew():
                    self.lost.set()
                    return
            except StoreError as exc:
                logger.warning("heartbeat of %s failed: %s", self.what, exc)
