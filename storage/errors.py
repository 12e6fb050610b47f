"""The store's own errors: every database failure reaches callers as one of these, in one line."""

from __future__ import annotations


class StoreError(Exception):
    """Base class of every error the store raises on purpose."""


class StoreUnavailable(StoreError):
    """The database cannot be opened or reached (down, wrong URL, unwritable file, incompatible schema)."""


class StudyNotFound(StoreError, LookupError):
    """No study with that name or id."""


class TrialNotFound(StoreError, LookupError):
    """No trial with that number in the study."""


class ArtifactNotFound(StoreError, LookupError):
    """The trial exists but has no saved model."""


class TokenNotFound(StoreError, LookupError):
    """No API token with that id."""


class TokenConflict(StoreError):
    """The token cannot be revoked: it is the last admin token."""


class StudyConflict(StoreError):
    """A study of that name exists with a different definition."""


class LeaseLost(StoreError):
    """The claim's lease is no longer current: it expired and the trial was requeued, or it finished elsewhere.

    A worker that gets this must stop working on the trial and drop its results.
    """


class SectionBusy(StoreUnavailable):
    """A critical section stayed held by another thread or process for longer than the wait allowed.

    Nothing was done; the caller may retry in a moment (the API answers 503).
    """


class SectionLost(StoreUnavailable):
    """The lock of the critical section in progress was lost (its database connection dropped), so another
    process may be inside: the transaction that noticed it was rolled back instead of committed.

    Like a crash half-way through, the store repairs what earlier steps left; the caller may retry.
    """


class DatasetNotFound(StoreError, LookupError):
    """No uploaded data set with that id, or no stored bytes with that digest."""
