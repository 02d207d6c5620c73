"""Drives `apogee standalone` with a raw remoting peer written from the protocol description
alone (no Apogee code, no client library): the features the official C++ client 0.4.4 has no
API for. Transactions: half messages committed, rolled back, and settled by answering the
broker's CHECK_TRANSACTION_STATE. Request-reply: SEND_REPLY_MESSAGE pushed to the requester
with PUSH_REPLY_MESSAGE_TO_CLIENT. Every outcome is checked by pulling the topic and decoding
the stored records here.

Usage: broker_wire_peer.py PATH_TO_APOGEE_BINARY
"""
import json
import threading
import time
import uuid

from apogee_process import WAIT_S, create_topic, pull_all, run_scenarios
from remoting_wire import (JSON, Connection, decode_records, encode_header, frame, parse_properties,
                           properties_text)

SEND_MESSAGE, HEARTBEAT, END_TRANSACTION = 10, 34, 37
CHECK_TRANSACTION_STATE = 39
SEND_REPLY_MESSAGE, SEND_REPLY_MESSAGE_V2, PUSH_REPLY_MESSAGE_TO_CLIENT = 324, 325, 326
SUCCESS, SYSTEM_ERROR = 0, 1
PREPARED, COMMIT, ROLLBACK = 4, 8, 12
# The broker checks halves older than 1 s every 500 ms.
BROKER_CONF = "transactionCheckInterval=500\ntransactionTimeOut=1000\n"
# How long a rolled-back or undecided half is watched for a wrong delivery: several check rounds.
QUIET_S = 4


def heartbeat_as_producer(conn, client_id, group):
    body = json.dumps({"clientID": client_id, "producerDataSet": [{"groupName": group}],
                       "consumerDataSet": []}).encode()
    response, _ = conn.request(HEARTBEAT, {}, body)
    assert response["code"] == SUCCESS, response


def send(conn, topic, group, body, properties, sys_flag=0):
    response, _ = conn.request(SEND_MESSAGE, {
        "producerGroup": group, "topic": topic, "defaultTopic": "TBW102",
        "defaultTopicQueueNums": "4", "queueId": "0", "sysFlag": str(sys_flag),
        "bornTimestamp": str(int(time.time() * 1000)), "flag": "0",
        "properties": properties_text(properties), "reconsumeTimes": "0",
        "unitMode": "false", "batch": "false"}, body.encode())
    assert response["code"] == SUCCESS, response
    return response["extFields"]


def end_transaction(conn, group, queue_offset, commit_log_offset, uniq_key, decision, from_check):
    """END_TRANSACTION, oneway as the Java client sends it."""
    conn.request(END_TRANSACTION, {
        "producerGroup": group, "tranStateTableOffset": str(queue_offset),
        "commitLogOffset": str(commit_log_offset), "commitOrRollback": str(decision),
        "fromTransactionCheck": "true" if from_check else "false",
        "msgId": uniq_key, "transactionId": uniq_key}, oneway=True)


def answer(conn, request_header, code, ext=None):
    header = encode_header(JSON, code, request_header["opaque"], ext or {}, 479, flag=1)
    conn.sock.sendall(frame(JSON, header))


def transactions(apogee):
    topic, group = "PeerTxTopic", "peer-tx-group"
    create_topic(apogee, topic, queues=1)
    # The check-back goes to a connection that heartbeats as a producer of the group.
    checks = Connection(apogee.broker, timeout_s=WAIT_S)
    heartbeat_as_producer(checks, f"127.0.0.1@peer-tx-{uuid.uuid4().hex[:8]}", group)
    sender = Connection(apogee.broker)
    halves = {}
    for name in ["commit", "rollback", "check-commit", "check-rollback"]:
        uniq = uuid.uuid4().hex.upper()
        ext = send(sender, topic, group, f"{name} body",
                   {"TRAN_MSG": "true", "PGROUP": group, "UNIQ_KEY": uniq, "KEYS": name}, PREPARED)
        assert ext["transactionId"] == uniq, ext
        halves[name] = {"uniq": uniq, "queue_offset": int(ext["queueOffset"]),
                        "commit_log_offset": int(ext["msgId"][-16:], 16)}
    # Nothing is visible before a decision.
    assert pull_all(apogee, topic, "peer-tx-reader") == [], "a half message was delivered"
    for name, decision in [("commit", COMMIT), ("rollback", ROLLBACK)]:
        half = halves[name]
        end_transaction(sender, group, half["queue_offset"], half["commit_log_offset"], half["uniq"],
                        decision, from_check=False)
    # The two undecided halves are asked about; answer each by its key.
    answered = set()
    deadline = time.monotonic() + WAIT_S
    while answered != {"check-commit", "check-rollback"}:
        assert time.monotonic() < deadline, f"checks missing; answered {answered}"
        header, body = checks.read_frame()
        assert header["code"] == CHECK_TRANSACTION_STATE, header
        assert header["flag"] & 2 == 2, f"a check is oneway: {header}"
        (record,) = decode_records(body)
        ext = header["extFields"]
        name = record["properties"]["KEYS"]
        assert name in ("check-commit", "check-rollback"), f"decided half {name} was checked"
        assert record["body"] == f"{name} body", record
        assert record["topic"] == topic, f"the check names the real topic: {record}"
        assert ext["msgId"] == halves[name]["uniq"], ext
        decision = COMMIT if name == "check-commit" else ROLLBACK
        end_transaction(sender, group, ext["tranStateTableOffset"], ext["commitLogOffset"],
                        ext["msgId"], decision, from_check=True)
        answered.add(name)
    # Checks may still be on their way for a round; decided halves must not come back.
    time.sleep(QUIET_S)
    got = pull_all(apogee, topic, "peer-tx-reader")
    delivered = sorted((record["properties"]["KEYS"], record["body"]) for record in got)
    assert delivered == [("check-commit", "check-commit body"), ("commit", "commit body")], delivered
    for record in got:
        assert record["properties"]["UNIQ_KEY"] == halves[record["properties"]["KEYS"]]["uniq"], record
        assert "TRAN_MSG" not in record["properties"] or record["sys_flag"] & 0xC == COMMIT, record
    checks.close()
    sender.close()
    print("transactions: commit and check-commit delivered once each, rollbacks never")


def request_reply(apogee):
    requester_id = f"127.0.0.1@peer-requester-{uuid.uuid4().hex[:8]}"
    reply_topic = "DefaultCluster_REPLY_TOPIC"
    requester = Connection(apogee.broker, timeout_s=WAIT_S)
    heartbeat_as_producer(requester, requester_id, "peer-requester-group")
    pushed = {}

    def take_push():
        header, body = requester.read_frame()
        pushed["header"], pushed["body"] = header, body
        answer(requester, header, SUCCESS)

    taker = threading.Thread(target=take_push, daemon=True)
    taker.start()
    replier = Connection(apogee.broker, timeout_s=WAIT_S)
    properties = {"CORRELATION_ID": "corr-1", "REPLY_TO_CLIENT": requester_id, "MSG_TYPE": "reply",
                  "TTL": "3000", "UNIQ_KEY": uuid.uuid4().hex.upper()}
    born_ms = int(time.time() * 1000)
    # SEND_REPLY_MESSAGE_V2 carries the send header under one-letter keys.
    response, _ = replier.request(SEND_REPLY_MESSAGE_V2, {
        "a": "peer-replier-group", "b": reply_topic, "c": "TBW102", "d": "4", "e": "0", "f": "0",
        "g": str(born_ms), "h": "7", "i": properties_text(properties), "j": "0", "k": "false"},
        b"the answer")
    taker.join(WAIT_S)
    assert response["code"] == SUCCESS, response
    header, body = pushed["header"], pushed["body"]
    ext = header["extFields"]
    assert header["code"] == PUSH_REPLY_MESSAGE_TO_CLIENT, header
    assert body == b"the answer", body
    assert ext["topic"] == reply_topic and ext["producerGroup"] == "peer-replier-group", ext
    assert ext["bornTimestamp"] == str(born_ms) and ext["flag"] == "7", ext
    assert ext["storeHost"] == f"127.0.0.1:{apogee.broker_port}", ext
    assert abs(int(ext["storeTimestamp"]) - born_ms) < 10_000, ext
    pushed_props = parse_properties(ext["properties"])
    assert pushed_props["CORRELATION_ID"] == "corr-1", pushed_props
    assert int(pushed_props["PUSH_REPLY_TIME"]) >= born_ms, pushed_props
    # storeReplyMessageEnable (the default): the reply is stored too, under the id answered.
    stored = [r for r in pull_all(apogee, reply_topic, "peer-reply-reader")
              if r["properties"].get("CORRELATION_ID") == "corr-1"]
    assert len(stored) == 1 and stored[0]["body"] == "the answer", stored
    assert int(response["extFields"]["queueOffset"]) == stored[0]["queue_offset"], response

    # A reply for a client the broker does not know: refused, naming it (Java's remark).
    properties["REPLY_TO_CLIENT"] = "127.0.0.1@nobody"
    response, _ = replier.request(SEND_REPLY_MESSAGE, {
        "producerGroup": "peer-replier-group", "topic": reply_topic, "defaultTopic": "TBW102",
        "defaultTopicQueueNums": "4", "queueId": "0", "sysFlag": "0",
        "bornTimestamp": str(born_ms), "flag": "0", "properties": properties_text(properties)},
        b"lost answer")
    assert response["code"] == SYSTEM_ERROR, response
    assert "channel of <127.0.0.1@nobody> not found" in response.get("remark", ""), response
    requester.close()
    replier.close()
    print("request-reply: the reply reached its requester and was stored; an unknown requester is refused")


if __name__ == "__main__":
    run_scenarios([transactions, request_reply], broker_conf=BROKER_CONF)
