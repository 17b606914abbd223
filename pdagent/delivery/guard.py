"""The schedule behind its one lock, shared by the engine's parts and threads."""

import threading


class GuardedSchedule:
    """The Scheduler, the lock that guards it, and the condition sender threads wait on.

    `stopping` is set once, under the lock, when the engine stops.
    """

    def __init__(self, scheduler):
        self.scheduler = scheduler
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)  # senders wait on it
        self.stopping = False
