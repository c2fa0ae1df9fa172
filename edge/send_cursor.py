"""Where the link is in the outbox on one connection: every durable entry up to `examined_id` was sent, set
aside or held. Held entries (the prepare hook said "not now") are remembered by id, oldest first, and looked at
again only when the link is told to release them, so a long hold (an hour of batches waiting for the clock)
costs one pass over the outbox per connection, not one per fill. Pure bookkeeping: the link does the I/O."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SendCursor:
    examined_id: int = 0
    # Held ids in increasing order (a dict is an ordered set): ids are examined in increasing order, so a newly
    # held id is always the newest, and the oldest is the first key.
    held: dict[int, None] = field(default_factory=dict)
    # While re-examining held entries after a release: the last id looked at again; None when not revisiting.
    revisit_after_id: int | None = None

    @property
    def revisiting(self) -> bool:
        return self.revisit_after_id is not None

    def oldest_held_id(self) -> int | None:
        return next(iter(self.held), None)

    def read_after_id(self) -> int:
        """Read the outbox after this id next."""
        return self.revisit_after_id if self.revisit_after_id is not None else self.examined_id

    def release(self) -> None:
        """Look at the held entries again, from the oldest."""
        oldest = self.oldest_held_id()
        if oldest is not None:
            self.revisit_after_id = oldest - 1

    def wants(self, entry_id: int) -> bool:
        """Should the link offer this entry now? While revisiting, only held ones: the others between them are
        in flight (or were acknowledged, and are gone). Past the examined region the revisit is over."""
        if self.revisit_after_id is None:
            return True
        if entry_id > self.examined_id:
            self.revisit_after_id = None
            return True
        return entry_id in self.held

    def passed(self, entry_id: int, *, held: bool) -> None:
        """The link is done with this entry for now: sent, set aside, skipped as in flight, or (held) held."""
        if self.revisit_after_id is not None:
            self.revisit_after_id = entry_id
            if not held:
                self.held.pop(entry_id, None)
            return
        self.examined_id = max(self.examined_id, entry_id)
        if held:
            self.held[entry_id] = None

    def reached_end(self) -> None:
        """The outbox has nothing more after read_after_id()."""
        self.revisit_after_id = None
