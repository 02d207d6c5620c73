"""Checks `apogee namesrv` against the NameServer behaviour of Apache RocketMQ, speaking the
wire protocol from Python (no Apogee code involved).

Usage: namesrv_interop.py PATH_TO_APOGEE_BINARY
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import zlib

from remoting_wire import JSON, ROCKETMQ, Connection, encode_header, frame

REGISTER_BROKER, UNREGISTER_BROKER, GET_ROUTEINFO_BY_TOPIC = 103, 104, 105
GET_BROKER_CLUSTER_INFO, GET_ALL_TOPIC_LIST = 106, 206
PUT_KV_CONFIG, GET_KV_CONFIG = 100, 101
UPDATE_NAMESRV_CONFIG, GET_NAMESRV_CONFIG, GET_BROKER_MEMBER_GROUP = 318, 319, 901
SUCCESS, SYSTEM_ERROR, REQUEST_CODE_NOT_SUPPORTED, NO_PERMISSION = 0, 1, 3, 16
TOPIC_NOT_EXIST, QUERY_NOT_FOUND = 17, 22

EXPIRY_MS = 1500


def topic_config(name, read, write, perm):
    return {"attributes": {}, "order": False, "perm": perm, "readQueueNums": read,
            "topicFilterType": "SINGLE_TAG", "topicName": name, "topicSysFlag": 0,
            "writeQueueNums": write}


def register_body(topics):
    wrapper = {"dataVersion": {"counter": 1, "stateVersion": 0, "timestamp": int(time.time() * 1000)},
               "topicConfigTable": {t["topicName"]: t for t in topics}}
    return json.dumps({"filterServerList": [], "topicConfigSerializeWrapper": wrapper}).encode()


def register(conn, name, addr, broker_id, topics, cluster):
    body = register_body(topics)
    ext = {"brokerName": name, "brokerAddr": addr, "clusterName": cluster,
           "haServerAddr": addr.rsplit(":", 1)[0] + ":10912", "brokerId": str(broker_id),
           "heartbeatTimeoutMillis": str(EXPIRY_MS), "compressed": "false",
           "bodyCrc32": str(zlib.crc32(body) & 0x7FFFFFFF)}
    return conn.request(REGISTER_BROKER, ext, body)


def route(conn, topic, version=479):
    response, body = conn.request(GET_ROUTEINFO_BY_TOPIC, {"topic": topic}, version=version)
    return response, body


def check_route(conn, topic, broker_addrs, read, write, perm):
    response, body = route(conn, topic)
    assert response["code"] == SUCCESS, response
    data = json.loads(body)
    [queue] = data["queueDatas"]
    assert queue == {"brokerName": "broker-a", "perm": perm, "readQueueNums": read,
                     "topicSysFlag": 0, "writeQueueNums": write}, queue
    [broker] = data["brokerDatas"]
    assert broker["brokerName"] == "broker-a" and broker["cluster"] == "ApogeeCluster", broker
    assert broker["brokerAddrs"] == broker_addrs, broker
    assert data["filterServerTable"] == {}, data


def scenario(address, serialization):
    kind = "JSON" if serialization == JSON else "ROCKETMQ"
    master_addr, slave_addr = "127.0.0.1:10911", "127.0.0.2:10911"
    # The registration connections stay open and silent: only expiry may remove them.
    master = Connection(address, serialization)
    slave = Connection(address, serialization)
    client = Connection(address, serialization)
    topics = [topic_config("TopicA-" + kind, 4, 4, 6), topic_config("TopicB-" + kind, 8, 2, 4)]

    response, body = register(master, "broker-a", master_addr, 0, topics, "ApogeeCluster")
    assert response["code"] == SUCCESS, response
    assert response["_serialization"] == serialization, "answered in the request's serialization"
    response, _ = register(slave, "broker-a", slave_addr, 1, topics, "ApogeeCluster")
    assert response["code"] == SUCCESS, response
    assert response["extFields"]["masterAddr"] == master_addr, response
    assert response["extFields"]["haServerAddr"] == "127.0.0.1:10912", response
    registered_at = time.monotonic()

    addrs = {"0": master_addr, "1": slave_addr}
    check_route(client, "TopicA-" + kind, addrs, 4, 4, 6)
    check_route(client, "TopicB-" + kind, addrs, 8, 2, 4)

    # Clients older than 4.9.4 (the Go client sends 317) get fastjson's bare numeric keys.
    response, body = route(client, "TopicA-" + kind, version=317)
    assert response["code"] == SUCCESS, response
    text = body.decode()
    assert '{0:"127.0.0.1:10911",1:"127.0.0.2:10911"}' in text, text

    response, _ = route(client, "NoSuchTopic")
    assert response["code"] == TOPIC_NOT_EXIST, response
    assert "NoSuchTopic" in response.get("remark", ""), response

    response, body = client.request(GET_BROKER_CLUSTER_INFO)
    assert response["code"] == SUCCESS, response
    text = body.decode()
    assert '"clusterAddrTable":{"ApogeeCluster":["broker-a"]}' in text, text

    response, body = client.request(GET_ALL_TOPIC_LIST)
    listed = json.loads(body)["topicList"]
    assert "TopicA-" + kind in listed and "TopicB-" + kind in listed, listed

    response, _ = client.request(4999)
    assert response["code"] == REQUEST_CODE_NOT_SUPPORTED, response

    # A missing required header field is answered, not fatal.
    response, _ = client.request(GET_ROUTEINFO_BY_TOPIC, {})
    assert response["code"] == SYSTEM_ERROR and "topic" in response.get("remark", ""), response

    # The brokers go silent: both must be expired after heartbeatTimeoutMillis.
    deadline = time.monotonic() + 15
    while True:
        response, _ = route(client, "TopicA-" + kind)
        if response["code"] == TOPIC_NOT_EXIST:
            break
        assert time.monotonic() < deadline, "broker never expired"
        time.sleep(0.1)
    waited = time.monotonic() - registered_at
    assert waited >= EXPIRY_MS / 1000.0, f"expired too early, after {waited:.2f}s"
    response, _ = route(client, "TopicB-" + kind)
    assert response["code"] == TOPIC_NOT_EXIST, response
    response, body = client.request(GET_BROKER_CLUSTER_INFO)
    assert "broker-a" not in body.decode(), body
    print(f"[{kind}] routes served, unknown topic -> 17, brokers expired after {waited:.2f}s")
    for conn in (master, slave, client):
        conn.close()


def closed_connection_unregisters(address):
    conn = Connection(address)
    response, _ = register(conn, "broker-c", "127.0.0.3:10911", 0,
                           [topic_config("TopicClose", 4, 4, 6), topic_config("TopicClose2", 1, 1, 6)],
                           "ApogeeCluster")
    assert response["code"] == SUCCESS, response
    client = Connection(address)
    assert route(client, "TopicClose")[0]["code"] == SUCCESS
    conn.close()
    deadline = time.monotonic() + 5
    while route(client, "TopicClose")[0]["code"] != TOPIC_NOT_EXIST:
        assert time.monotonic() < deadline, "closing the connection did not unregister the broker"
        time.sleep(0.05)
    client.close()
    print("closing a broker's connection unregisters it")


def kv_config(address):
    client = Connection(address)
    response, _ = client.request(GET_KV_CONFIG, {"namespace": "ORDER_TOPIC_CONFIG", "key": "T"})
    assert response["code"] == QUERY_NOT_FOUND, response
    response, _ = client.request(PUT_KV_CONFIG, {"namespace": "ORDER_TOPIC_CONFIG", "key": "T",
                                                 "value": "broker-a:4"})
    assert response["code"] == SUCCESS, response
    response, _ = client.request(GET_KV_CONFIG, {"namespace": "ORDER_TOPIC_CONFIG", "key": "T"})
    assert response["extFields"]["value"] == "broker-a:4", response
    client.close()
    print("kv config put/get")


def admin_requests(address):
    client = Connection(address)
    response, body = client.request(GET_NAMESRV_CONFIG)
    assert response["code"] == SUCCESS and b"orderMessageEnable=false" in body, (response, body)
    response, _ = client.request(UPDATE_NAMESRV_CONFIG, body=b"orderMessageEnable=true\n")
    assert response["code"] == SUCCESS, response
    response, body = client.request(GET_NAMESRV_CONFIG)
    assert b"orderMessageEnable=true" in body, body
    response, _ = client.request(UPDATE_NAMESRV_CONFIG, body=b"kvConfigPath=/elsewhere\n")
    assert response["code"] == NO_PERMISSION, response

    broker = Connection(address)
    response, _ = register(broker, "broker-m", "127.0.0.4:10911", 0,
                           [topic_config("TopicM", 4, 4, 6), topic_config("TopicM2", 4, 4, 6)],
                           "ApogeeCluster")
    assert response["code"] == SUCCESS, response
    response, body = client.request(GET_BROKER_MEMBER_GROUP,
                                    {"clusterName": "ApogeeCluster", "brokerName": "broker-m"})
    assert response["code"] == SUCCESS, response
    group = json.loads(re.sub(r"([{,])(\d+):", r'\1"\2":', body.decode()))["brokerMemberGroup"]
    assert group["brokerAddrs"] == {"0": "127.0.0.4:10911"}, group
    # With orderMessageEnable on, the route carries the ORDER_TOPIC_CONFIG entry.
    client.request(PUT_KV_CONFIG, {"namespace": "ORDER_TOPIC_CONFIG", "key": "TopicM",
                                   "value": "broker-m:4"})
    response, body = route(client, "TopicM")
    assert json.loads(body)["orderTopicConf"] == "broker-m:4", body
    broker.close()
    client.close()
    print("namesrv config get/update, black list refused, broker member group, orderTopicConf")


def malformed_input(address):
    """Hostile frames close their own connection; the server keeps serving the others."""
    healthy = Connection(address)
    json_header = encode_header(JSON, 105, 1, {"topic": "x"}, 479)
    cases = {
        "random bytes": os.urandom(64),
        "2 GiB length": b"\x80\x00\x00\x00" + os.urandom(16),
        "length just under 2 GiB": b"\x7f\xff\xff\xff" + os.urandom(16),
        "header length past the frame": b"\x00\x00\x00\x0c\x00\x00\x01\x00" + b"{}" + b"\x00" * 6,
        "broken JSON": frame(JSON, b'{"code":105,"extFields":{', b""),
        "unknown serialization type": frame(7, json_header),
        "negative length": b"\xff\xff\xff\xf0",
    }
    for name, payload in cases.items():
        bad = Connection(address)
        bad.sock.sendall(payload)
        assert bad.is_closed_by_server(), f"{name}: connection was not closed"
        bad.close()
        response, _ = healthy.request(GET_ALL_TOPIC_LIST)
        assert response["code"] == SUCCESS, f"{name}: healthy connection broken: {response}"
    healthy.close()
    print(f"{len(cases)} kinds of malformed input closed their connection; others kept being served")


def main():
    binary = sys.argv[1]
    with tempfile.TemporaryDirectory() as home:
        process = subprocess.Popen(
            [binary, "namesrv", "--listen", "127.0.0.1:0", "--scan-interval-ms", "200",
             "--kv-config-path", os.path.join(home, "kvConfig.json")],
            stdout=subprocess.PIPE, text=True)
        try:
            line = process.stdout.readline()
            match = re.search(r"listening on (\S+):(\d+)", line)
            assert match, f"unexpected first line: {line!r}"
            address = (match.group(1), int(match.group(2)))
            scenario(address, JSON)
            scenario(address, ROCKETMQ)
            closed_connection_unregisters(address)
            kv_config(address)
            admin_requests(address)
            malformed_input(address)
            assert process.poll() is None, "name server died"
        finally:
            process.terminate()
            try:
                code = process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                raise
        assert code == 0, f"name server exited with {code} on SIGTERM"
        print("name server stopped cleanly on SIGTERM")


if __name__ == "__main__":
    main()
