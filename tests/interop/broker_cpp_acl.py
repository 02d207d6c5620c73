"""ACL 1.0 against the official Apache RocketMQ C++ client (PyPI `rocketmq`): with `aclEnable`
and a `plain_acl.yml` that whitelists no address, a producer with the right credentials sends
and a consumer with them receives; the wrong secret is refused; an unsigned raw request is
refused NO_PERMISSION. The raw requests here are signed by this script's own HMAC-SHA1, so the
signature scheme is checked against an implementation that shares nothing with Apogee's.

Usage: broker_cpp_acl.py PATH_TO_APOGEE_BINARY
"""
import subprocess
import sys
import threading
import time

from rocketmq.client import Message, Producer, PushConsumer, SendStatus

from apogee_process import WAIT_S, create_topic, plain_acl, run_scenarios
from remoting_wire import Connection, signed

SUCCESS, NO_PERMISSION = 0, 16
UPDATE_AND_CREATE_TOPIC, SEND_MESSAGE_V2 = 17, 310
TOPIC = "AclCppTopic"
APP_KEY, APP_SECRET = "cpp-app-key", "cpp-app-secret"
ADMIN_KEY, ADMIN_SECRET = "cpp-admin-key", "cpp-admin-secret"

ACL_FILE = plain_acl((APP_KEY, APP_SECRET), (ADMIN_KEY, ADMIN_SECRET), [f"{TOPIC}=PUB|SUB"])


def create_topic_as_admin(apogee):
    """An unsigned UPDATE_AND_CREATE_TOPIC is refused; the admin's signed one creates the topic."""
    conn = Connection(apogee.broker)
    fields = {"topic": TOPIC, "defaultTopic": "TBW102", "readQueueNums": "4", "writeQueueNums": "4",
              "perm": "6", "topicFilterType": "SINGLE_TAG", "topicSysFlag": "0", "order": "false"}
    response, _ = conn.request(UPDATE_AND_CREATE_TOPIC, fields)
    conn.close()
    assert response["code"] == NO_PERMISSION, f"unsigned admin call served: {response}"
    create_topic(apogee, TOPIC, sign=lambda fields: signed(fields, ADMIN_KEY, ADMIN_SECRET))


def raw_sends(apogee):
    conn = Connection(apogee.broker)
    fields = {"a": "raw-producer", "b": TOPIC, "c": "TBW102", "d": "4", "e": "0", "f": "0",
              "g": str(int(time.time() * 1000)), "h": "0", "i": "", "j": "0", "k": "false", "m": "false"}
    response, _ = conn.request(SEND_MESSAGE_V2, fields, b"unsigned")
    assert response["code"] == NO_PERMISSION, response
    assert "No accessKey" in (response.get("remark") or ""), response
    response, _ = conn.request(SEND_MESSAGE_V2, signed(fields, APP_KEY, "wrong-secret", b"bad"), b"bad")
    assert response["code"] == NO_PERMISSION, response
    assert "signature" in (response.get("remark") or ""), response
    response, _ = conn.request(SEND_MESSAGE_V2, signed(fields, APP_KEY, APP_SECRET, b"raw"), b"raw")
    assert response["code"] == SUCCESS, response
    conn.close()


def producer(namesrv, group, secret):
    p = Producer(group)
    p.set_namesrv_addr(namesrv)
    p.set_session_credentials(APP_KEY, secret, "LOCAL")
    p.start()
    return p


def sdk_round_trip(apogee):
    received, lock = [], threading.Lock()

    def on_message(msg):
        with lock:
            received.append(msg.body.decode())

    consumer = PushConsumer("cpp-acl-consumers")
    consumer.set_namesrv_addr(apogee.namesrv)
    consumer.set_session_credentials(APP_KEY, APP_SECRET, "LOCAL")
    consumer.subscribe(TOPIC, on_message, "*")
    consumer.start()

    good = producer(apogee.namesrv, "cpp-acl-producer", APP_SECRET)
    message = Message(TOPIC)
    message.set_body("signed by the C++ client")
    result = good.send_sync(message)
    assert result.status == SendStatus.OK, result
    good.shutdown()

    # The C++ client keeps one client instance (and one set of credentials) per process: the
    # wrong secret gets a process of its own.
    child = subprocess.run([sys.executable, "-u", __file__, "--wrong-secret", apogee.namesrv],
                           capture_output=True, text=True, timeout=WAIT_S)
    print(child.stdout, end="")
    assert child.returncode == 0, f"wrong-secret producer: {child.stdout} {child.stderr}"

    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        with lock:
            if "signed by the C++ client" in received:
                break
        time.sleep(0.1)
    consumer.shutdown()
    with lock:
        assert "signed by the C++ client" in received, received
        assert "wrong secret" not in received, received


def wrong_secret_producer(namesrv):
    """Sends with the wrong secret; exits 0 only when the send is refused."""
    wrong = producer(namesrv, "cpp-acl-wrong-producer", "not-the-secret")
    refused = Message(TOPIC)
    refused.set_body("wrong secret")
    try:
        outcome = wrong.send_sync(refused)
    except Exception as error:  # The C++ client raises its own exception types.
        # It reports every failed retry as "No route info"; the route itself comes from the
        # NameServer, which checks nothing, and the same send with the right secret succeeded.
        print(f"wrong secret refused as expected: {error}")
        sys.exit(0)
    finally:
        wrong.shutdown()
    print(f"a wrong secret was served: {outcome}")
    sys.exit(1)


def main():
    if sys.argv[1] == "--wrong-secret":
        wrong_secret_producer(sys.argv[2])
        return
    run_scenarios((create_topic_as_admin, raw_sends, sdk_round_trip), acl=ACL_FILE)
    print("broker_cpp_acl: ok")


if __name__ == "__main__":
    main()
