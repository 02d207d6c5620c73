"""Drives `apogee proxy` (gRPC cluster mode) with the official Apache RocketMQ 5.x Python client
(PyPI `rocketmq-python-client`): one proxy in front of two broker groups registered with one
NameServer, each a separate `apogee broker` process. What reaches each broker is read back
over remoting, broker by broker, with the protocol peer in remoting_wire.py.

Usage: grpc_python_cluster.py PATH_TO_APOGEE_BINARY
"""
import json
import os
import subprocess
import sys
import tempfile
import time

from rocketmq import FilterExpression, PushConsumer, SimpleConsumer

from apogee_process import SUCCESS, WAIT_S, address, poll, pull_all, read_ports
from grpc_python_client import (AWAIT_S, INVISIBLE_S, QUIET_S, Collecting, config, message, send_all, send_transactions,
                                started_simple_consumer)
from remoting_wire import Connection

UPDATE_AND_CREATE_TOPIC, GET_ROUTEINFO_BY_TOPIC = 17, 105
BROKERS = ("cluster-broker-a", "cluster-broker-b")
QUEUES = 2
# Checks come quickly: a round every 500 ms for halves older than 1 s.
BROKER_CONF = "brokerClusterName=ProxyCluster\ntransactionCheckInterval=500\ntransactionTimeOut=1000\n" \
              "reviveInterval=200\n"


class Broker:
    """One `apogee broker` group, as `pull_all` takes it."""

    def __init__(self, name, addr):
        self.name, self.broker = name, addr


class Cluster:
    """`apogee namesrv`, two `apogee broker` groups and `apogee proxy`, on ports the system
    chose, stopped with SIGTERM."""

    def __init__(self, binary, data_dir):
        self.binary, self.data_dir = binary, data_dir
        self.processes = []
        self.brokers = []
        self.namesrv = None
        self.grpc = None

    def spawn(self, what, args):
        ports = os.path.join(self.data_dir, f"{what}.ports")
        with open(os.path.join(self.data_dir, f"{what}.log"), "w", encoding="utf-8") as log:
            process = subprocess.Popen([self.binary] + args + ["--ports-file", ports], stdout=log,
                                       stderr=subprocess.STDOUT)
        self.processes.append(process)
        return read_ports(ports, process, what)

    def start(self):
        ports = self.spawn("namesrv", ["namesrv", "--listen", "127.0.0.1:0"])
        self.namesrv = ports["namesrv"]
        for name in BROKERS:
            conf = os.path.join(self.data_dir, f"{name}.conf")
            with open(conf, "w", encoding="utf-8") as out:
                out.write(f"brokerName={name}\n" + BROKER_CONF)
            ports = self.spawn(name, ["broker", "-n", self.namesrv, "-c", conf, "--listen-port", "0",
                                      "--grpc-port", "0", "--store-dir", os.path.join(self.data_dir, name)])
            self.brokers.append(Broker(name, address(ports["broker"])))
        ports = self.spawn("proxy", ["proxy", "-n", self.namesrv, "--grpc-port", "0", "--bind-addr", "127.0.0.1",
                                     "--data-dir", os.path.join(self.data_dir, "proxy")])
        self.grpc = ports["grpc"]

    def stop(self):
        codes = []
        for process in reversed(self.processes):
            process.terminate()
            codes.append(process.wait(timeout=30))
        assert codes == [0] * len(codes), f"exit codes {codes}"


def create_topic(cluster, topic, message_type=None):
    """UPDATE_AND_CREATE_TOPIC on every broker, then wait until the NameServer routes the topic
    to both groups."""
    for broker in cluster.brokers:
        conn = Connection(broker.broker)
        fields = {"topic": topic, "defaultTopic": "TBW102", "readQueueNums": str(QUEUES),
                  "writeQueueNums": str(QUEUES), "perm": "6", "topicFilterType": "SINGLE_TAG",
                  "topicSysFlag": "0", "order": "false"}
        if message_type is not None:
            fields["attributes"] = f"+message.type={message_type}"
        response, _ = conn.request(UPDATE_AND_CREATE_TOPIC, fields)
        conn.close()
        assert response["code"] == SUCCESS, response
    namesrv = Connection(address(cluster.namesrv))
    deadline = time.monotonic() + WAIT_S
    try:
        while True:
            response, body = namesrv.request(GET_ROUTEINFO_BY_TOPIC, {"topic": topic, "acceptStandardJsonOnly": "true"})
            if response["code"] == SUCCESS:
                names = sorted(data["brokerName"] for data in json.loads(body)["queueDatas"])
                if names == sorted(BROKERS):
                    return
            assert time.monotonic() < deadline, f"route of {topic} never named both brokers"
            time.sleep(0.1)
    finally:
        namesrv.close()


def per_broker(cluster, topic, reader, queues=QUEUES, absent_ok=False):
    """Every record of `topic` on each broker, by broker name (none where the topic does not
    exist yet, when `absent_ok`)."""
    return {broker.name: [record for queue_id in range(queues)
                          for record in pull_all(broker, topic, reader, queue_id, absent_ok=absent_ok)]
            for broker in cluster.brokers}


def spread(cluster):
    """A producer's messages through the proxy land on both broker groups, intact, each with the
    client's id; together the groups hold exactly what was sent."""
    topic = "ClusterSpreadTopic"
    create_topic(cluster, topic)
    bodies = [f"spread {n}" for n in range(20)]
    receipts = send_all(cluster, topic, [message(topic, body, tag="TagS") for body in bodies])
    sent = {receipt.message_id: body for receipt, body in zip(receipts, bodies)}
    assert len(sent) == len(bodies), "every send got its own message id"
    stored = per_broker(cluster, topic, "cluster-spread-reader")
    counts = {name: len(records) for name, records in stored.items()}
    assert all(count > 0 for count in counts.values()), f"sends did not reach both groups: {counts}"
    got = {}
    for records in stored.values():
        for record in records:
            props = record["properties"]
            assert props["UNIQ_KEY"] not in got, f"stored twice: {record}"
            assert props["TAGS"] == "TagS" and props["PGROUP"] == topic, props
            got[props["UNIQ_KEY"]] = record["body"]
    assert got == sent, (got, sent)
    print(f"spread: {len(sent)} messages over both broker groups {counts}")


def receive_all(cluster):
    """A SimpleConsumer through the proxy receives every message of both groups exactly once,
    acks each (by the broker its receipt handle names), and nothing comes back."""
    topic, group = "ClusterReceiveTopic", "cluster-receive-group"
    create_topic(cluster, topic)
    consumer = started_simple_consumer(cluster, group, topic)
    try:
        bodies = [f"receive {n}" for n in range(24)]
        receipts = send_all(cluster, topic, [message(topic, body) for body in bodies])
        ids = {receipt.message_id: body for receipt, body in zip(receipts, bodies)}
        stored = per_broker(cluster, topic, "cluster-receive-reader")
        assert all(stored.values()), f"sends did not reach both groups: { {k: len(v) for k, v in stored.items()} }"
        got, brokers = [], set()
        deadline = time.monotonic() + WAIT_S
        while len(got) < len(bodies) and time.monotonic() < deadline:
            for received in consumer.receive(16, INVISIBLE_S):
                got.append((received.message_id, received.body.decode()))
                brokers.add(received.receipt_handle.split(" ")[5])
                if len(got) % 2 == 0:
                    # A new invisible time on the message's broker; its new handle acks it.
                    consumer.change_invisible_duration(received, INVISIBLE_S * 3)
                consumer.ack(received)
        assert sorted(got) == sorted(ids.items()), f"received {sorted(got)}"
        assert brokers == set(BROKERS), f"handles named {brokers}"
        # Acked everywhere: nothing is delivered again after the invisible time.
        late = []
        deadline = time.monotonic() + INVISIBLE_S + 5
        while time.monotonic() < deadline:
            late += consumer.receive(16, INVISIBLE_S)
        assert late == [], [m.body for m in late]
    finally:
        consumer.shutdown()
    print(f"receive: {len(bodies)} messages from both groups received once and acked; none came back")


def transactions(cluster):
    """Transactions through the proxy: committed and rolled back by the producer, and by its
    checker when a broker checks back through the proxy; only commits are delivered."""
    topic = "ClusterTxTopic"
    create_topic(cluster, topic, message_type="TRANSACTION")
    asked = send_transactions(cluster, topic, [
        ("commit now a", "commit"), ("commit now b", "commit"), ("rollback now", "rollback"),
        ("commit on check a", None), ("commit on check b", None), ("rollback on check", None)])
    expected = ["commit on check a", "commit on check b", "rollback on check"]
    assert asked == expected, f"the checker was asked about {asked}"
    stored = per_broker(cluster, topic, "cluster-tx-reader")
    delivered = sorted(record["body"] for records in stored.values() for record in records)
    assert delivered == ["commit now a", "commit now b", "commit on check a", "commit on check b"], delivered
    halves = {name: len(records) for name, records in stored.items()}
    print(f"transactions: commit and rollback by the producer and by its checker through the proxy {halves}")


def fifo(cluster):
    """FIFO through the proxy: each message group lands in one queue of one broker group, in
    send order, and the groups use both broker groups' queues."""
    topic = "ClusterFifoTopic"
    create_topic(cluster, topic, message_type="FIFO")
    groups = [f"order-{n}" for n in range(8)]
    send_all(cluster, topic, [message(topic, f"{groups[n % 8]} #{n // 8}", group=groups[n % 8]) for n in range(40)])
    place = {}
    for broker in cluster.brokers:
        for queue_id in range(QUEUES):
            bodies = [r["body"] for r in pull_all(broker, topic, "cluster-fifo-reader", queue_id)]
            for group in groups:
                mine = [body for body in bodies if body.startswith(group + " ")]
                if mine:
                    assert group not in place, f"{group} split over {place[group]} and {(broker.name, queue_id)}"
                    place[group] = (broker.name, queue_id)
                    assert mine == [f"{group} #{n}" for n in range(5)], f"{group} out of order: {mine}"
    assert sorted(place) == sorted(groups), place
    assert {name for name, _ in place.values()} == set(BROKERS), f"groups all on one broker: {place}"
    print(f"fifo: each message group in one queue, in order: {place}")


UPDATE_AND_CREATE_SUBSCRIPTIONGROUP = 200


def create_group(cluster, group, orderly=False, retry_max_times=16):
    """UPDATE_AND_CREATE_SUBSCRIPTIONGROUP on every broker, as mqadmin sends it."""
    body = json.dumps({"groupName": group, "consumeEnable": True, "consumeFromMinEnable": False,
                       "consumeBroadcastEnable": True, "retryQueueNums": 1, "retryMaxTimes": retry_max_times,
                       "brokerId": 0, "whichBrokerWhenConsumeSlowly": 1, "notifyConsumerIdsChangedEnable": True,
                       "consumeMessageOrderly": orderly}).encode()
    for broker in cluster.brokers:
        conn = Connection(broker.broker)
        response, _ = conn.request(UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, {}, body)
        conn.close()
        assert response["code"] == SUCCESS, response


def fifo_consumer(cluster):
    """An orderly group's FIFO messages through the proxy (the group's config read from the
    brokers): while the first message of a message group is received and not acked, the next
    one is held back; it comes again after its invisible time, then the rest in order."""
    topic, group = "ClusterFifoConsumeTopic", "cluster-fifo-group"
    create_topic(cluster, topic, message_type="FIFO")
    create_group(cluster, group, orderly=True)
    consumer = SimpleConsumer(config(cluster), group, {topic: FilterExpression("*")}, await_duration=AWAIT_S)
    consumer.startup()
    try:
        assert consumer.receive(1, INVISIBLE_S) == [], "a new group starts after what was stored"
        bodies = [f"ordered #{n}" for n in range(4)]
        send_all(cluster, topic, [message(topic, body, group="the-group") for body in bodies])
        first = []
        deadline = time.monotonic() + WAIT_S
        while not first and time.monotonic() < deadline:
            first = consumer.receive(1, INVISIBLE_S)
        assert [(m.body.decode(), m.delivery_attempt) for m in first] == [("ordered #0", 1)], first
        held_at = time.monotonic()
        # Not acked: the message group's queue is held, so nothing else comes for now.
        blocked = consumer.receive(1, INVISIBLE_S)
        assert blocked == [], f"delivered past an un-acked FIFO message: {[m.body for m in blocked]}"
        got = []
        deadline = time.monotonic() + WAIT_S
        while len(got) < len(bodies) and time.monotonic() < deadline:
            for received in consumer.receive(1, INVISIBLE_S):
                got.append((received.body.decode(), received.delivery_attempt, time.monotonic() - held_at))
                consumer.ack(received)
        assert [(body, attempt) for body, attempt, _ in got] == \
            [("ordered #0", 2)] + [(body, 1) for body in bodies[1:]], got
        assert got[0][2] >= INVISIBLE_S - 1, f"redelivered after {got[0][2]:.1f} s, before its invisible time"
    finally:
        consumer.shutdown()
    print("fifo consumer: a held FIFO message blocks its group until redelivered, then the rest in order",
          [(body, round(at, 1)) for body, _, at in got])


POLLING_INFO = 200055


def wait_parked(cluster, group, topic):
    """Waits until a receive of `group` long-polls on one of the brokers (POLLING_INFO): the proxy
    asked every broker once before, so the group has its place on each."""
    conns = [Connection(broker.broker) for broker in cluster.brokers]
    deadline = time.monotonic() + WAIT_S
    try:
        while True:
            parked = 0
            for conn in conns:
                response, _ = conn.request(POLLING_INFO, {"consumerGroup": group, "topic": topic, "queueId": "-1"})
                assert response["code"] == SUCCESS, response
                parked += int(response["extFields"]["pollingNum"])
            if parked >= 1:
                return
            assert time.monotonic() < deadline, f"no receive of {group} ever waited on {topic}"
            time.sleep(0.2)
    finally:
        for conn in conns:
            conn.close()


def push_dead_letters(cluster):
    """A push consumer through the proxy whose deliveries all fail sees each message as often as
    its group allows (the group's retries read from the brokers, each failure a new invisible
    time on the message's broker); then each message is in the group's dead-letter queue on the
    broker that held it."""
    topic, group = "ClusterPushTopic", "cluster-push-dlq"
    create_topic(cluster, topic)
    create_group(cluster, group, retry_max_times=1)
    listener = Collecting(fail=True)
    consumer = PushConsumer(config(cluster), group, listener, {topic: FilterExpression("*")})
    consumer.startup()
    try:
        wait_parked(cluster, group, topic)
        bodies = [f"dead {n}" for n in range(6)]
        send_all(cluster, topic, [message(topic, body) for body in bodies])
        stored = {name: sorted(r["body"] for r in records)
                  for name, records in per_broker(cluster, topic, "cluster-push-reader").items()}
        assert all(stored.values()), f"sends did not reach both groups: {stored}"
        dead = poll(lambda: {name: sorted(r["body"] for r in records) for name, records in
                             per_broker(cluster, f"%DLQ%{group}", "cluster-dlq-reader", 1, True).items()},
                    lambda dead: dead == stored)
        assert dead == stored, f"dead letters {dead}, stored {stored}"
        time.sleep(QUIET_S)
    finally:
        consumer.shutdown()
    with listener.lock:
        attempts = sorted(listener.deliveries)
    # retryMaxTimes 1: two attempts each, the second counted as such.
    assert attempts == sorted([(b, 1) for b in bodies] + [(b, 2) for b in bodies]), attempts
    print(f"push dead letters: each message tried twice, then in the dead-letter queue of its broker {dead}")


def broker_down(cluster):
    """With one broker group stopped, sends through the proxy still succeed (the stopped
    group's queues are passed over once it failed to answer) and land on the group left, and a
    consumer receives them all once."""
    topic, group = "ClusterDownTopic", "cluster-down-group"
    create_topic(cluster, topic)
    consumer = started_simple_consumer(cluster, group, topic)
    try:
        stopped = cluster.processes[2]  # the second broker group
        stopped.terminate()
        assert stopped.wait(timeout=30) == 0
        bodies = [f"down {n}" for n in range(12)]
        receipts = send_all(cluster, topic, [message(topic, body) for body in bodies])
        sent = {receipt.message_id: body for receipt, body in zip(receipts, bodies)}
        left = cluster.brokers[0]
        stored = [r for queue_id in range(QUEUES) for r in pull_all(left, topic, "cluster-down-reader", queue_id)]
        assert {r["properties"]["UNIQ_KEY"]: r["body"] for r in stored} == sent, stored
        got = []
        deadline = time.monotonic() + WAIT_S
        while len(got) < len(bodies) and time.monotonic() < deadline:
            for received in consumer.receive(16, INVISIBLE_S):
                got.append((received.message_id, received.body.decode()))
                consumer.ack(received)
        assert sorted(got) == sorted(sent.items()), f"received {sorted(got)}"
    finally:
        consumer.shutdown()
    print(f"broker down: {len(bodies)} messages sent and received through the group left")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as data:
        running = Cluster(sys.argv[1], data)
        try:
            running.start()
            for scenario in (spread, receive_all, transactions, fifo, fifo_consumer, push_dead_letters, broker_down):
                scenario(running)
        except BaseException:
            with open(os.path.join(data, "proxy.log"), encoding="utf-8", errors="replace") as log:
                print("proxy log (end):\n" + "".join(log.readlines()[-60:]))
            raise
        finally:
            running.stop()
