"""The official Apache RocketMQ C++ client (PyPI `rocketmq`) as a peer of the Rust SDK.

  cpp_peer.py produce NAMESRV TOPIC COUNT   sends COUNT messages (tags TagB, keys CPPKEY<i>,
                                            property origin=apogee-cpp, body "Hello from C++ <i>")
  cpp_peer.py consume NAMESRV TOPIC COUNT   push-consumes until COUNT distinct messages arrived,
                                            waits a second more for late duplicates, then prints
                                            one JSON line per delivery (duplicates included, so
                                            the caller can see them); exits 1 on timeout
"""
import json
import sys
import threading
import time

from rocketmq.client import Message, Producer, PushConsumer, SendStatus

TIMEOUT_S = 60


def produce(namesrv, topic, count):
    producer = Producer("cpp-peer-producer")
    producer.set_namesrv_addr(namesrv)
    producer.start()
    for index in range(count):
        message = Message(topic)
        message.set_tags("TagB")
        message.set_keys(f"CPPKEY{index}")
        message.set_property("origin", "apogee-cpp")
        message.set_body(f"Hello from C++ {index}")
        result = producer.send_sync(message)
        assert result.status == SendStatus.OK, result
    producer.shutdown()
    print(f"sent {count}")


def consume(namesrv, topic, count):
    deliveries = []
    distinct = set()
    lock = threading.Lock()

    def on_message(message):
        record = {
            "topic": message.topic.decode() if isinstance(message.topic, bytes) else message.topic,
            "tags": (message.tags or b"").decode(),
            "keys": (message.keys or b"").decode(),
            "body": message.body.decode(),
            "origin": (message.get_property("origin") or b"").decode(),
            "id": message.id.decode() if isinstance(message.id, bytes) else message.id,
        }
        with lock:
            deliveries.append(record)
            distinct.add(record["keys"])

    consumer = PushConsumer("cpp-peer-consumer")
    consumer.set_namesrv_addr(namesrv)
    consumer.subscribe(topic, on_message)
    consumer.start()
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        with lock:
            if len(distinct) >= count:
                break
        time.sleep(0.05)
    time.sleep(1)
    consumer.shutdown()
    with lock:
        for record in deliveries:
            print(json.dumps(record))
        sys.exit(0 if len(distinct) >= count else 1)


if __name__ == "__main__":
    mode, namesrv, topic, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    {"produce": produce, "consume": consume}[mode](namesrv, topic, count)
