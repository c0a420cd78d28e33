"""The runner on EC2: its instance identity, and the notices that its instance ends.

Owns: the start-up probe of the instance metadata service (one try of 1 s: a host
off EC2 must not wait), which gives PollForTask its ``instanceIdentity``; and
``InstanceWatch``, an ``ec2-watch`` thread that asks every 5 s whether a spot
interruption or an Auto Scaling termination is coming, and turns the first notice
into a drain, through the dispatcher's inbox as a signal would.

Must not: reach the metadata service when ``AWS_EC2_METADATA_DISABLED`` is true,
retry, or warn more than once about the same thing.

Why a drain and not a fast stop: a spot notice comes two minutes before the end,
and Auto Scaling's ``Terminated`` state before its lifecycle hook's timeout; a
drain stops polling at once and gives running tasks ``drain_timeout``, which the
operator sets to fit. The watch runs only where the probe answered: off EC2 there
is nothing to watch.
"""

from __future__ import annotations

import os
import queue

import structlog

from runner.aws import imds
from runner.heartbeat import Heartbeat
from runner.signals import INSTANCE_ENDING, Request

#: How often the watch asks (the notices come minutes ahead).
WATCH_EVERY_S = 5.0
#: One question of the watch may take this long.
WATCH_TIMEOUT_S = 2.0


def instance_identity(
    metadata: imds.Metadata | None, log: structlog.typing.FilteringBoundLogger
) -> imds.InstanceIdentity | None:
    """The identity document and signature, or None with one warning (the
    metadata service is disabled, or did not answer within 1 s)."""
    if metadata is None:
        log.warning(
            "instance_identity_skipped",
            reason="AWS_EC2_METADATA_DISABLED is set",
        )
        return None
    try:
        return metadata.identity(imds.PROBE_TIMEOUT_S)
    except imds.MetadataError as exc:
        log.warning(
            "instance_identity_skipped",
            reason=f"the instance metadata service did not answer: {exc}",
        )
        return None


def metadata_service() -> imds.Metadata | None:
    """The metadata service, unless ``AWS_EC2_METADATA_DISABLED`` is true."""
    return None if imds.disabled(os.environ) else imds.Metadata()


class InstanceWatch:
    """Asks the metadata service every ``interval_s`` whether the instance is
    about to end; the first notice is logged and put in ``inbox``."""

    def __init__(
        self,
        metadata: imds.Metadata,
        inbox: queue.SimpleQueue[Request],
        log: structlog.typing.FilteringBoundLogger,
        interval_s: float = WATCH_EVERY_S,
    ) -> None:
        self._metadata = metadata
        self._inbox = inbox
        self._log = log
        self._noticed = False
        self._failing = False
        self._beat = Heartbeat(
            self._ask, interval_s=interval_s, name="ec2-watch", log=log,
            first_delay_s=0.0,
        )  # fmt: skip

    def start(self) -> None:
        self._beat.start()

    def stop(self) -> None:
        self._beat.stop()

    def _ask(self) -> None:
        if self._noticed:
            return
        try:
            notice = self._metadata.end_notice(WATCH_TIMEOUT_S)
        except imds.MetadataError as exc:
            if not self._failing:  # once, until it answers again
                self._log.warning("instance_watch_failed", error=str(exc))
            self._failing = True
            return
        self._failing = False
        if notice is not None:
            self._noticed = True
            self._log.warning("instance_ending", notice=notice)
            self._inbox.put(INSTANCE_ENDING)
