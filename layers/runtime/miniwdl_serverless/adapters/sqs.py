"""The DeadLetters port on SQS: the stack's dead-letter queue."""

from __future__ import annotations

from typing import Any

from miniwdl_serverless.core.reconciling import DeadLetter

RECEIVE_LIMIT = 10  # ReceiveMessage returns at most 10 messages a call


class SqsDeadLetters:
    def __init__(self, client: Any, queue_url: str, visibility_seconds: int = 120):
        self.client = client
        self.queue_url = queue_url
        self.visibility_seconds = visibility_seconds  # a message not deleted comes back then

    def receive(self, limit: int) -> list[DeadLetter]:
        """Up to ``limit`` messages, 10 a call, until the queue answers with none (or only
        with messages received already: their visibility ran out meanwhile)."""
        letters: dict[str, DeadLetter] = {}
        while len(letters) < limit:
            response = self.client.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(RECEIVE_LIMIT, limit - len(letters)),
                MessageAttributeNames=["All"],
                VisibilityTimeout=self.visibility_seconds,
                WaitTimeSeconds=0,
            )
            fresh = [m for m in response.get("Messages", []) if m["MessageId"] not in letters]
            if not fresh:
                break
            letters.update((m["MessageId"], _letter(m)) for m in fresh)
        return list(letters.values())

    def delete(self, letter: DeadLetter) -> None:
        self.client.delete_message(QueueUrl=self.queue_url, ReceiptHandle=letter.receipt)


def _letter(message: dict[str, Any]) -> DeadLetter:
    attributes = {
        name: str(value.get("StringValue", ""))
        for name, value in (message.get("MessageAttributes") or {}).items()
    }
    return DeadLetter(
        message_id=str(message["MessageId"]),
        body=str(message.get("Body") or ""),
        receipt=str(message["ReceiptHandle"]),
        attributes=attributes,
    )
