"""The alternatives the benchmark compares with, written as their authors would, on the SDK's default urllib3 client.

    python bench/sdk_default_client.py single USER_ID QUEUE_ID   # find the agent's call, transfer, verify
    python bench/sdk_default_client.py naive-bulk SOURCE_ID QUEUE_ID
        # community-tool style: list the queue, then one call at a time read it and transfer it

Credentials and host come from GENESYS_CLIENT_ID, GENESYS_CLIENT_SECRET and GENESYS_API_HOST.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import time

import PureCloudPlatformClientV2 as sdk


def query(dimension: str, value: str, page: int = 1) -> dict:
    now = dt.datetime.now(dt.timezone.utc)
    interval = f"{(now - dt.timedelta(days=1)):%Y-%m-%dT%H:%M:%S.000Z}/{(now + dt.timedelta(minutes=1)):%Y-%m-%dT%H:%M:%S.000Z}"
    return {"interval": interval, "order": "asc", "orderBy": "conversationStart",
            "paging": {"pageSize": 100, "pageNumber": page},
            "conversationFilters": [{"type": "and", "predicates": [
                {"type": "dimension", "dimension": "conversationEnd", "operator": "notExists"}]}],
            "segmentFilters": [{"type": "and", "predicates": [
                {"type": "dimension", "dimension": dimension, "operator": "matches", "value": value},
                {"type": "dimension", "dimension": "mediaType", "operator": "matches", "value": "voice"},
                {"type": "dimension", "dimension": "segmentEnd", "operator": "notExists"}]}]}


def main() -> None:
    mode, who, queue_id = sys.argv[1:4]
    client = sdk.ApiClient(host=os.environ["GENESYS_API_HOST"]).get_client_credentials_token(
        os.environ["GENESYS_CLIENT_ID"], os.environ["GENESYS_CLIENT_SECRET"])
    analytics, conversations = sdk.AnalyticsApi(client), sdk.ConversationsApi(client)
    body = {"queueId": queue_id}
    if mode == "single":
        found = analytics.post_analytics_conversations_details_query(query("userId", who))
        for candidate in found.conversations or []:
            conversation = conversations.get_conversation(candidate.conversation_id)
            agent = next((p for p in conversation.participants if p.purpose == "agent" and p.user_id == who
                          and p.end_time is None), None)
            if agent:
                conversations.post_conversation_participant_replace_queue(conversation.id, agent.id, body)
                while True:
                    time.sleep(0.25)
                    after = conversations.get_conversation(conversation.id)
                    if any(p.purpose == "acd" and p.queue_id == queue_id and p.end_time is None
                           for p in after.participants):
                        return
        sys.exit("no call")
    found, page = [], 1
    while True:
        listing = analytics.post_analytics_conversations_details_query(query("queueId", who, page))
        found += listing.conversations or []
        if len(listing.conversations or []) < 100:
            break
        page += 1
    for candidate in found:
        conversation = conversations.get_conversation(candidate.conversation_id)
        acd = next((p for p in conversation.participants if p.purpose == "acd" and p.queue_id == who
                    and p.end_time is None), None)
        if acd:
            conversations.post_conversation_participant_replace_queue(conversation.id, acd.id, body)


if __name__ == "__main__":
    main()
