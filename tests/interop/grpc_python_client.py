"""Drives `apogee standalone`'s gRPC endpoint with the official Apache RocketMQ 5.x Python
client (PyPI `rocketmq-python-client`), the way a 5.x application would. What the client sends
is checked on the broker side by pulling the topics over remoting and decoding the records.

Usage: grpc_python_client.py PATH_TO_APOGEE_BINARY
"""
import json
import os
import threading
import time

from rocketmq import (ClientConfiguration, ConsumeResult, Credentials, FilterExpression, Message, MessageListener,
                      Producer, PushConsumer, SimpleConsumer, TransactionChecker, TransactionResolution)
from rocketmq.grpc_protocol import FilterType

from apogee_process import SUCCESS, WAIT_S, create_topic, poll, pull_all, run_scenarios
from remoting_wire import Connection

# Checks come quickly: a round every 500 ms for halves older than 1 s.
BROKER_CONF = ("recallMessageEnable=true\ntransactionCheckInterval=500\ntransactionTimeOut=1000\nreviveInterval=200\nenablePropertyFilter=true\n"
               # Push consumers' messages are invisible 3 s at first, renewed from 1.5 s ahead.
               "defaultInvisibleTimeMills=3000\nrenewSchedulePeriodMillis=500\nrenewAheadTimeMillis=1500\n")
QUEUES = 4
# How long an undecided or rolled-back half is watched for a wrong delivery.
QUIET_S = 3


def tls(apogee):
    """The same port speaks TLS: a producer with TLS on, trusting the certificate Apogee
    generated (the Python client verifies certificates; Java, Go, C# and C++ accept any)."""
    cert = os.path.join(apogee.data_dir, "store", "tls", "apogee-self-signed.crt")
    assert os.path.exists(cert), f"no generated certificate at {cert}"
    # gRPC reads its default trust store from this variable when it first needs one.
    os.environ["GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"] = cert
    topic = "GrpcTlsTopic"
    create_topic(apogee, topic, queues=QUEUES)
    producer = Producer(config(apogee), (topic,), tls_enable=True)
    producer.startup()
    try:
        receipt = producer.send(message(topic, "over tls"))
    finally:
        producer.shutdown()
    stored = pull_topic(apogee, topic, "grpc-tls-reader")
    assert [(r["body"], r["properties"]["UNIQ_KEY"]) for r in stored] == [("over tls", receipt.message_id)], stored
    print("tls: a producer with TLS on is served on the plaintext port")


# The shortest invisible time a receive may ask for, in seconds.
INVISIBLE_S = 10
# The shortest long poll, in seconds.
AWAIT_S = 5


def started_simple_consumer(apogee, group, topic, expression="*"):
    """A SimpleConsumer whose group has its place: a group without an offset starts at the
    queues' end on its first receive (as 5.x does), so one empty receive comes first."""
    consumer = SimpleConsumer(config(apogee), group, {topic: FilterExpression(expression)}, await_duration=AWAIT_S)
    consumer.startup()
    assert consumer.receive(16, INVISIBLE_S) == [], "a new group starts after what was stored"
    return consumer


def receive_until(consumer, count, invisible_s=INVISIBLE_S, limit_s=WAIT_S):
    got = []
    deadline = time.monotonic() + limit_s
    while len(got) < count and time.monotonic() < deadline:
        got += consumer.receive(16, invisible_s)
    return got


def send_plain(apogee, topic, bodies):
    """Sends each body with a tag, a key and a property; their message ids by body."""
    receipts = send_all(apogee, topic, [
        message(topic, body, tag="TagA", keys="K-" + body.replace(" ", "-"), properties={"origin": "python"})
        for body in bodies])
    return {body: receipt.message_id for body, receipt in zip(bodies, receipts)}


def simple_consumer(apogee):
    """Receive and ack; a message left un-acked comes back after its invisible time with one
    more attempt; a changed invisible time holds it longer and its new handle acks it."""
    topic, group = "GrpcSimpleTopic", "grpc-simple-group"
    create_topic(apogee, topic, queues=QUEUES)
    consumer = started_simple_consumer(apogee, group, topic)
    try:
        bodies = [f"simple {n}" for n in range(6)]
        ids = send_plain(apogee, topic, bodies)
        got = receive_until(consumer, len(bodies))
        assert sorted(m.body.decode() for m in got) == sorted(bodies), [m.body for m in got]
        kept = None
        changed = None
        for message in got:
            body = message.body.decode()
            assert message.message_id == ids[body], (message.message_id, ids[body])
            assert message.tag == "TagA" and set(message.keys) == {"K-" + body.replace(" ", "-")}, (message.tag, message.keys)
            assert message.properties.get("origin") == "python", message.properties
            assert message.delivery_attempt == 1, message.delivery_attempt
            if kept is None:
                kept = message  # never acked: must come back
            elif changed is None:
                changed = message
                consumer.change_invisible_duration(message, INVISIBLE_S * 3)
            else:
                consumer.ack(message)
        received_at = time.monotonic()
        again = receive_until(consumer, 1, limit_s=INVISIBLE_S * 2 + 10)
        waited = time.monotonic() - received_at
        assert [m.body.decode() for m in again] == [kept.body.decode()], [m.body for m in again]
        assert again[0].delivery_attempt == 2, again[0].delivery_attempt
        assert waited >= INVISIBLE_S - 1, f"redelivered after {waited:.1f} s, before its invisible time"
        assert waited < INVISIBLE_S + 15, f"redelivered only after {waited:.1f} s"
        consumer.ack(again[0])
        # The message whose invisible time was changed is acked with its new handle.
        consumer.ack(changed)
        # Nothing comes back: every message was acked.
        late = receive_until(consumer, 1, limit_s=INVISIBLE_S * 3 + 5)
        assert late == [], [m.body for m in late]
    finally:
        consumer.shutdown()
    print("simple consumer: receive, ack, redelivery after the invisible time, change invisible duration")


POLLING_INFO, UPDATE_AND_CREATE_SUBSCRIPTIONGROUP = 200055, 200


def wait_parked(apogee, group, topic, count):
    """Waits until `count` receives wait on `topic` (POLLING_INFO): the consumers have made
    their first pop, so their groups start from there."""
    conn = Connection(apogee.broker)
    deadline = time.monotonic() + WAIT_S
    try:
        while True:
            response, _ = conn.request(POLLING_INFO, {"consumerGroup": group, "topic": topic, "queueId": "-1"})
            assert response["code"] == SUCCESS, response
            if int(response["extFields"]["pollingNum"]) >= count:
                return
            assert time.monotonic() < deadline, f"{count} parked receives on {topic} never came"
            time.sleep(0.2)
    finally:
        conn.close()


def create_group(apogee, group, retry_max_times=16, orderly=False):
    """UPDATE_AND_CREATE_SUBSCRIPTIONGROUP as mqadmin sends it."""
    conn = Connection(apogee.broker)
    body = json.dumps({"groupName": group, "consumeEnable": True, "consumeFromMinEnable": False,
                       "consumeBroadcastEnable": True, "retryQueueNums": 1,
                       "retryMaxTimes": retry_max_times, "brokerId": 0, "whichBrokerWhenConsumeSlowly": 1,
                       "notifyConsumerIdsChangedEnable": True,
                       "consumeMessageOrderly": orderly}).encode()
    response, _ = conn.request(UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, {}, body)
    conn.close()
    assert response["code"] == SUCCESS, response


class Collecting(MessageListener):
    """Records every delivery; fails every delivery when `fail` is set."""

    def __init__(self, fail=False):
        self.lock = threading.Lock()
        self.deliveries = []
        self.fail = fail

    def consume(self, message):
        with self.lock:
            self.deliveries.append((message.body.decode(), message.delivery_attempt))
        return ConsumeResult.FAILURE if self.fail else ConsumeResult.SUCCESS

    def wait(self, predicate, limit_s=WAIT_S):
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            with self.lock:
                if predicate(list(self.deliveries)):
                    return
            time.sleep(0.2)
        with self.lock:
            raise AssertionError(f"deliveries never matched: {self.deliveries}")


def push_consumers(apogee):
    """PushConsumers with a tag filter and a SQL92 filter each get exactly their messages; a
    consumer that always fails sees each message as often as its group allows, then the
    message is in the group's dead-letter queue."""
    topic = "GrpcPushTopic"
    create_topic(apogee, topic, queues=QUEUES)
    create_group(apogee, "grpc-push-dlq", retry_max_times=1)
    tagged, selected, failing = Collecting(), Collecting(), Collecting(fail=True)
    consumers = [
        PushConsumer(config(apogee), "grpc-push-tag", tagged, {topic: FilterExpression("TagA")}),
        PushConsumer(config(apogee), "grpc-push-sql", selected, {topic: FilterExpression("n > 5", FilterType.SQL)}),
        PushConsumer(config(apogee), "grpc-push-dlq", failing, {topic: FilterExpression("TagB")}),
    ]
    for consumer in consumers:
        consumer.startup()
    try:
        wait_parked(apogee, "grpc-push-tag", topic, len(consumers))
        send_all(apogee, topic, [message(topic, f"push {n}", tag="TagA" if n % 2 == 0 else "TagB",
                                         properties={"n": str(n)}) for n in range(10)])
        even = sorted(f"push {n}" for n in range(0, 10, 2))
        tagged.wait(lambda got: sorted(body for body, _ in got) == even)
        above_five = sorted(f"push {n}" for n in range(6, 10))
        selected.wait(lambda got: sorted(body for body, _ in got) == above_five)
        odd = sorted(f"push {n}" for n in range(1, 10, 2))
        dlq_topic = "%DLQ%grpc-push-dlq"
        dead = poll(lambda: sorted(r["body"] for r in pull_all(apogee, dlq_topic, "grpc-dlq-reader", absent_ok=True)),
                    lambda dead: dead == odd)
        assert dead == odd, f"dead letters {dead}, deliveries {failing.deliveries}"
        time.sleep(QUIET_S)
    finally:
        for consumer in consumers:
            consumer.shutdown()
    with tagged.lock, selected.lock, failing.lock:
        assert sorted(b for b, _ in tagged.deliveries) == even, tagged.deliveries
        assert sorted(b for b, _ in selected.deliveries) == above_five, selected.deliveries
        attempts = sorted(failing.deliveries)
    # retryMaxTimes 1: two attempts each, the second counted as such.
    assert attempts == sorted([(b, 1) for b in odd] + [(b, 2) for b in odd]), attempts
    print("push consumers: tag and SQL92 filters exact; failures retried once, then dead-lettered")


def push_renewal(apogee):
    """A push consumer working on messages far longer than their first invisible time (3 s)
    gets each once: the endpoint renews their handles, and the ack with the handle the client
    holds settles the renewed one."""
    topic, group = "GrpcRenewTopic", "grpc-renew-group"
    create_topic(apogee, topic, queues=QUEUES)

    class Slow(Collecting):
        def consume(self, message):
            result = super().consume(message)
            time.sleep(8)
            return result

    listener = Slow()
    consumer = PushConsumer(config(apogee), group, listener, {topic: FilterExpression("*")})
    consumer.startup()
    try:
        wait_parked(apogee, group, topic, 1)
        send_all(apogee, topic, [message(topic, f"slow {n}") for n in range(3)])
        listener.wait(lambda got: len(got) >= 3)
        time.sleep(8 + QUIET_S)
    finally:
        consumer.shutdown()
    with listener.lock:
        deliveries = sorted(listener.deliveries)
    assert deliveries == [(f"slow {n}", 1) for n in range(3)], deliveries
    print("push renewal: messages held 8 s past a 3 s invisible time are delivered once")


def fifo_consumer(apogee):
    """A FIFO topic read by an orderly group: each message group arrives in send order, even
    when a delivery fails and is retried."""
    topic, group = "GrpcFifoConsumeTopic", "grpc-fifo-group"
    create_topic(apogee, topic, queues=QUEUES, message_type="FIFO")
    create_group(apogee, group, orderly=True)

    class FailFirst(Collecting):
        def consume(self, message):
            body = message.body.decode()
            with self.lock:
                first = all(seen != body for seen, _ in self.deliveries)
                self.deliveries.append((body, message.delivery_attempt))
            return ConsumeResult.FAILURE if first and body.endswith("#2") else ConsumeResult.SUCCESS

    listener = FailFirst()
    consumer = PushConsumer(config(apogee), group, listener, {topic: FilterExpression("*")})
    consumer.startup()
    try:
        wait_parked(apogee, group, topic, 1)
        send_all(apogee, topic, fifo_messages(topic, 15))
        listener.wait(lambda got: len({body for body, _ in got}) == 15)
        time.sleep(QUIET_S)
    finally:
        consumer.shutdown()
    with listener.lock:
        deliveries = list(listener.deliveries)
    for group_name in ("g0", "g1", "g2"):
        mine = [body for body, _ in deliveries if body.startswith(group_name + " ")]
        # #2 failed once and came again before #3: the group's order holds through the retry.
        expected = [f"{group_name} #{n}" for n in (0, 1, 2, 2, 3, 4)]
        assert mine == expected, f"{group_name}: {mine}"
    print("fifo consumer: each message group in order, a failed message retried in place")


def message(topic, body, tag=None, keys=None, group=None, properties=None):
    """A 5.x client message."""
    built = Message()
    built.topic = topic
    built.body = body.encode()
    if tag is not None:
        built.tag = tag
    if keys is not None:
        built.keys = keys
    if group is not None:
        built.message_group = group
    for key, value in (properties or {}).items():
        built.add_property(key, value)
    return built


def send_all(apogee, topic, messages):
    """Sends `messages` with one producer of `topic`; their receipts, in order."""
    producer = Producer(config(apogee), (topic,))
    producer.startup()
    try:
        return [producer.send(each) for each in messages]
    finally:
        producer.shutdown()


def fifo_messages(topic, count):
    """`count` messages over three message groups, numbered within each group."""
    return [message(topic, f"g{n % 3} #{n // 3}", group=f"group-{n % 3}") for n in range(count)]


def config(apogee):
    return ClientConfiguration(apogee.grpc, Credentials(), request_timeout=10)


def pull_topic(apogee, topic, group):
    got = []
    for queue_id in range(QUEUES):
        got += pull_all(apogee, topic, group, queue_id)
    return got


def normal(apogee):
    topic = "GrpcNormalTopic"
    create_topic(apogee, topic, queues=QUEUES)
    receipts = send_all(apogee, topic, [
        message(topic, f"normal {n}", tag="TagA", keys=f"KEY{n}", properties={"index": str(n)}) for n in range(8)])
    sent = {}
    for index, receipt in enumerate(receipts):
        assert len(receipt.message_id) == 34, receipt.message_id
        sent[receipt.message_id] = (index, receipt.offset)
    stored = pull_topic(apogee, topic, "grpc-normal-reader")
    assert len(stored) == len(sent), (len(stored), len(sent))
    queues = set()
    for record in stored:
        props = record["properties"]
        index, offset = sent[props["UNIQ_KEY"]]
        assert record["body"] == f"normal {index}", record
        assert props["TAGS"] == "TagA" and props["KEYS"] == f"KEY{index}", props
        assert props["index"] == str(index) and props["PGROUP"] == topic, props
        assert record["queue_offset"] == offset, (record, offset)
        queues.add(record["queue_id"])
    assert len(queues) > 1, f"sends without a group spread over the queues: {queues}"
    print(f"normal: {len(sent)} messages stored intact with the client's ids, over queues {sorted(queues)}")


def fifo(apogee):
    topic = "GrpcFifoTopic"
    create_topic(apogee, topic, queues=QUEUES, message_type="FIFO")
    send_all(apogee, topic, fifo_messages(topic, 24))
    queue_of = {}
    for queue_id in range(QUEUES):
        bodies = [r["body"] for r in pull_all(apogee, topic, "grpc-fifo-reader", queue_id)]
        for group in ("g0", "g1", "g2"):
            mine = [body for body in bodies if body.startswith(group + " ")]
            if mine:
                assert group not in queue_of, f"{group} is split over queues {queue_of[group]} and {queue_id}"
                queue_of[group] = queue_id
                assert mine == [f"{group} #{n}" for n in range(8)], f"{group} out of order: {mine}"
    assert sorted(queue_of) == ["g0", "g1", "g2"], queue_of
    print(f"fifo: each message group in one queue, in send order: {queue_of}")


def delay(apogee):
    """Delay messages by delivery timestamp: none arrives before its time, each within the
    broker's precision after it, with the id the send gave; a recalled one never arrives, and
    recalling a delivered one fails."""
    topic, group = "GrpcDelayTopic", "grpc-delay-group"
    create_topic(apogee, topic, queues=QUEUES, message_type="DELAY")
    consumer = started_simple_consumer(apogee, group, topic)
    producer = Producer(config(apogee), (topic,))
    producer.startup()
    try:
        due_ms = {}
        receipts = {}
        # This client copies `delivery_timestamp` into the protobuf Timestamp's seconds, so it
        # is given in seconds (a value in ms would be read as ~50,000 years ahead).
        now_s = int(time.time())
        for body, delay_s in [("due in 2 s", 2), ("due in 4 s", 4), ("recalled", 3)]:
            built = message(topic, body, tag="TagDelay")
            built.delivery_timestamp = now_s + delay_s
            receipts[body] = producer.send(built)
            due_ms[body] = (now_s + delay_s) * 1000
            assert receipts[body].recall_handle, f"no recall handle for {body}"
        recalled_id = producer.recall_message(topic, receipts["recalled"].recall_handle)
        assert recalled_id == receipts["recalled"].message_id, (recalled_id, receipts["recalled"].message_id)
        arrived = {}
        deadline = time.monotonic() + 15
        while len(arrived) < 2 and time.monotonic() < deadline:
            for got in consumer.receive(16, INVISIBLE_S):
                arrived[got.body.decode()] = (int(time.time() * 1000), got)
                consumer.ack(got)
        assert sorted(arrived) == ["due in 2 s", "due in 4 s"], sorted(arrived)
        for body, (at_ms, got) in arrived.items():
            assert got.message_id == receipts[body].message_id, (got.message_id, receipts[body].message_id)
            assert at_ms >= due_ms[body], f"{body} arrived {due_ms[body] - at_ms} ms early"
            # One precision (1 s) of rounding, plus a receive's long poll and scheduling.
            assert at_ms - due_ms[body] < 2500, f"{body} arrived {at_ms - due_ms[body]} ms late"
        late = receive_until(consumer, 1, limit_s=QUIET_S)
        assert late == [], [m.body for m in late]
        try:
            producer.recall_message(topic, receipts["due in 2 s"].recall_handle)
            raise AssertionError("recalling a delivered message succeeded")
        except AssertionError:
            raise
        except Exception as error:
            print(f"delay: recalling a delivered message refused: {error}")
    finally:
        producer.shutdown()
        consumer.shutdown()
    print("delay: on time and never early, with their ids; a recalled one never arrives")


class Checker(TransactionChecker):
    """Commits what the body says to commit; records what was asked."""

    def __init__(self):
        self.asked = []
        self.lock = threading.Lock()

    def check(self, message):
        with self.lock:
            self.asked.append(message.body.decode())
        if message.body.startswith(b"commit"):
            return TransactionResolution.COMMIT
        return TransactionResolution.ROLLBACK


def send_transactions(target, topic, decisions):
    """Sends each `(body, decision)` of `decisions` in its own transaction: `"commit"` and
    `"rollback"` are decided by the producer, `None` is left to its Checker. Waits until the
    checker was asked about each of those (and QUIET_S more); gives the bodies it was asked
    about, sorted."""
    checker = Checker()
    producer = Producer(config(target), (topic,), checker)
    producer.startup()
    try:
        for body, decide in decisions:
            transaction = producer.begin_transaction()
            producer.send(message(topic, body), transaction)
            if decide == "commit":
                transaction.commit()
            elif decide == "rollback":
                transaction.rollback()
        on_check = {body for body, decide in decisions if decide is None}
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            with checker.lock:
                if on_check <= set(checker.asked):
                    break
            time.sleep(0.2)
        time.sleep(QUIET_S)
    finally:
        producer.shutdown()
    with checker.lock:
        return sorted(set(checker.asked))


def transactions(apogee):
    topic = "GrpcTxTopic"
    create_topic(apogee, topic, queues=QUEUES, message_type="TRANSACTION")
    asked = send_transactions(apogee, topic, [("commit now", "commit"), ("rollback now", "rollback"),
                                              ("commit on check", None), ("rollback on check", None)])
    assert asked == ["commit on check", "rollback on check"], f"the checker was asked about {asked}"
    delivered = sorted(r["body"] for r in pull_topic(apogee, topic, "grpc-tx-reader"))
    assert delivered == ["commit now", "commit on check"], delivered
    print("transactions: commit and rollback by the producer, and by its checker on the server's check")


if __name__ == "__main__":
    run_scenarios([normal, fifo, transactions, delay, tls, simple_consumer, push_consumers, push_renewal, fifo_consumer], broker_conf=BROKER_CONF)
