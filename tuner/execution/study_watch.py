"""A worker's view of one study's status while it trains for it: paused or cancelled meanwhile?

A trial of 10 000 epochs, or a study gate of thousands of steps, runs long after its owner may have paused or
cancelled the study (``POST /pause``, ``/cancel``). The worker asks between gate steps and epochs; reading the
study row on every one would cost more than a short epoch, so ``StudyWatch`` reads it at most every
``every_s`` seconds and answers from the last read in between.
"""

from __future__ import annotations

import logging
import time

from storage import Store, StoreError, StudyNotFound

logger = logging.getLogger(__name__)

#: Seconds between two reads of a study's status: a pause or cancel is noticed about this soon.
STUDY_CHECK_S = 1.0
#: What ``StudyWatch.status`` answers for a study that no longer exists.
DELETED = "deleted"


class StudyWatch:
    """The status of study ``study_id``, read from ``store`` at most every ``every_s`` seconds.

    Args:
        store: the worker's store.
        study_id: the study to watch.
        status: its status when the work started (the first read is ``every_s`` after that).
        every_s: seconds between two reads.
    """

    def __init__(self, store: Store, study_id: int, status: str, every_s: float = STUDY_CHECK_S):
        self.store, self.study_id, self.every_s = store, study_id, every_s
        self._status = status
        self._read_at = time.monotonic()

    def status(self) -> str:
        """The study's status (``DELETED`` once it is gone), as of at most ``every_s`` seconds ago.

        A store error keeps the last known status (a blip must not stop a trial; the heartbeat tells a lost
        database apart).
        """
        if time.monotonic() - self._read_at < self.every_s:
            return self._status
        self._read_at = time.monotonic()
        try:
            self._status = self.store.get_study(self.study_id).status
        except StudyNotFound:
            self._status = DELETED
        except StoreError as exc:
            logger.warning("study %d: reading its status failed: %s", self.study_id, exc)
        return self._status
