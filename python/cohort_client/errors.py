"""The error a call raises: a stable code and a message (docs/protocol.md, Error codes)."""


class CohortError(Exception):
    """An error reply (code from the node or the service), or one made here:
    `timeout` (no reply before the deadline, `local` is True)."""

    # Codes that are about this attempt, not the operation: retrying may succeed.
    TRANSIENT = {"timeout", "unavailable", "overloaded", "rate_limited", "storage_unavailable"}

    def __init__(self, code, message, local=False, owner=None):
        super().__init__("%s: %s" % (code, message))
        self.code = code
        self.message = message
        self.local = local
        # wrong_shard only: the shard's owner as the node named it (docs/protocol.md,
        # Error reply): {"node", "endpoint", "server_key", "shard", "shards", "epoch"}.
        self.owner = owner

    @property
    def transient(self):
        return self.code in self.TRANSIENT
