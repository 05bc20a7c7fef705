"""Intake: forward each valid request to the coordinator that owns its experiment."""

from __future__ import annotations

import json

from streams.effects import Effects, Envelope
from streams.events import RequestState, StartRequest, StatusEvent
from streams.wire import Undecodable


class Intake:
    """``requests`` -> ``control``: a request becomes the start event of its experiment."""

    async def handle(self, envelope: Envelope) -> Effects:
        return Effects(control=[StartRequest(request=envelope.value)])

    def undecodable(self, envelope: Envelope, bad: Undecodable) -> Effects:
        """Tell the requester on the status topic, when the bytes say who the requester is."""
        try:
            fields = json.loads(bad.raw)
        except ValueError:
            return Effects()  # not JSON: nobody to tell; the dead letter keeps it
        if not isinstance(fields, dict) or not isinstance(fields.get("experiment_id"), str):
            return Effects()
        experiment_id = fields["experiment_id"][:256]
        request_id = str(fields.get("request_id") or "unknown")[:64]
        rejected = RequestState.REJECTED
        return Effects(
            status=[
                StatusEvent(
                    request_id=request_id,
                    experiment_id=experiment_id,
                    state=rejected,
                    message=f"invalid request ({bad.reason}): {bad.error}",
                    summary={"request_id": request_id, "experiment_id": experiment_id,
                             "state": rejected.value, "cause": bad.error},
                )
            ]
        )
