"""ACL 1.0 on the gRPC endpoint against the official Apache RocketMQ 5.x Python client (PyPI
`rocketmq-python-client`): with `aclEnable` and a `plain_acl.yml` that whitelists no address,
a producer and a SimpleConsumer signing with the right SessionCredentials send and receive;
the wrong secret and no credentials are refused UNAUTHORIZED (40100); a topic the account may
only subscribe to is refused FORBIDDEN (40300) on send. Topics are created over remoting with
requests signed by the test's own HMAC-SHA1 (remoting_wire.signed).

Usage: grpc_python_acl.py PATH_TO_APOGEE_BINARY
"""

import grpc
from rocketmq import ClientConfiguration, Credentials, FilterExpression, Producer, SimpleConsumer
from rocketmq.grpc_protocol import MessagingServiceStub, QueryRouteRequest, Resource, SendMessageRequest
from rocketmq.grpc_protocol.definition_pb2 import Message as WireMessage, SystemProperties
from rocketmq.v5.util import ClientId, Signature

from apogee_process import create_topic, plain_acl, run_scenarios
from grpc_python_client import AWAIT_S, INVISIBLE_S, message, receive_until
from remoting_wire import signed

SUCCESS_CODE, UNAUTHORIZED, FORBIDDEN = 20000, 40100, 40300
TOPIC, READ_ONLY_TOPIC = "GrpcAclTopic", "GrpcAclReadOnly"
GROUP = "grpc-acl-group"
APP_KEY, APP_SECRET = "grpc-app-key", "grpc-app-secret"
ADMIN_KEY, ADMIN_SECRET = "grpc-admin-key", "grpc-admin-secret"
QUEUES = 4

ACL_FILE = plain_acl(
    (APP_KEY, APP_SECRET), (ADMIN_KEY, ADMIN_SECRET), [f"{TOPIC}=PUB|SUB", f"{READ_ONLY_TOPIC}=SUB"])


def config(apogee, ak, sk):
    return ClientConfiguration(apogee.grpc, Credentials(ak, sk), request_timeout=10)


def refusal(action):
    """The exception `action` raises (it must raise)."""
    try:
        action()
    except Exception as error:  # the client's exception classes carry the body code
        return error
    raise AssertionError("the call was served")


def code_of(error):
    return getattr(error, "code", None)


def signed_call(apogee, ak, sk, rpc, request):
    """One unary call through the client's generated stub, with the metadata (headers and
    `authorization` signature) the client's own `Signature.metadata` makes for `ak`/`sk`."""
    channel = grpc.insecure_channel(apogee.grpc)
    try:
        stub = MessagingServiceStub(channel)
        metadata = Signature.metadata(config(apogee, ak, sk), str(ClientId()))
        return getattr(stub, rpc)(request, metadata=metadata, timeout=10)
    finally:
        channel.close()


def wire_send(topic, body):
    return SendMessageRequest(messages=[WireMessage(
        topic=Resource(name=topic), body=body.encode(),
        system_properties=SystemProperties(message_id="01" + "0" * 32, body_encoding=1, message_type=1))])


def refused_statuses(apogee):
    """Statuses as the client's own signing gets them: the right keys are served, the wrong
    secret, no key and an unknown key get UNAUTHORIZED with Java's remark, a topic the account
    may only subscribe to gets FORBIDDEN naming it."""
    served = signed_call(apogee, APP_KEY, APP_SECRET, "QueryRoute", QueryRouteRequest(topic=Resource(name=TOPIC)))
    assert served.status.code == SUCCESS_CODE, served.status
    for ak, sk, remark in [(APP_KEY, "not-the-secret", f"Check signature failed for accessKey={APP_KEY}"),
                           ("", "", "No accessKey is configured"),
                           ("stranger-key", APP_SECRET, "No acl config for stranger-key")]:
        for rpc, request in [("QueryRoute", QueryRouteRequest(topic=Resource(name=TOPIC))),
                             ("SendMessage", wire_send(TOPIC, "refused"))]:
            status = signed_call(apogee, ak, sk, rpc, request).status
            assert (status.code, status.message) == (UNAUTHORIZED, f"Authentication failed: {remark}"), (rpc, ak, status)
    status = signed_call(apogee, APP_KEY, APP_SECRET, "SendMessage", wire_send(READ_ONLY_TOPIC, "forbidden")).status
    assert (status.code, status.message) == (FORBIDDEN, f"Access denied: No permission for topic:{READ_ONLY_TOPIC}"), status
    print("statuses: UNAUTHORIZED for a wrong secret, no key and an unknown key; FORBIDDEN for a subscribe-only topic")


def right_credentials(apogee):
    """A consumer and a producer with the account's keys: every message sent arrives once, with
    its body and id, and is acked."""
    consumer = SimpleConsumer(config(apogee, APP_KEY, APP_SECRET), GROUP, {TOPIC: FilterExpression("*")},
                              await_duration=AWAIT_S)
    consumer.startup()
    try:
        assert consumer.receive(16, INVISIBLE_S) == [], "a new group starts after what was stored"
        producer = Producer(config(apogee, APP_KEY, APP_SECRET), (TOPIC,))
        producer.startup()
        try:
            bodies = [f"signed {n}" for n in range(6)]
            ids = {body: producer.send(message(TOPIC, body)).message_id for body in bodies}
        finally:
            producer.shutdown()
        got = receive_until(consumer, len(bodies))
        assert sorted(m.body.decode() for m in got) == sorted(bodies), [m.body for m in got]
        for received in got:
            assert received.message_id == ids[received.body.decode()], received.message_id
            consumer.ack(received)
    finally:
        consumer.shutdown()
    print("right credentials: a producer and a SimpleConsumer signing with the account's keys are served")


def wrong_credentials(apogee):
    """A producer and a consumer with the wrong secret, no credentials or an unknown key fail
    (the client reports the refused route as a failed route fetch); nothing they sent arrives."""
    for label, ak, sk in [("wrong secret", APP_KEY, "not-the-secret"), ("no credentials", "", ""),
                          ("unknown key", "stranger-key", APP_SECRET)]:
        producer = Producer(config(apogee, ak, sk), (TOPIC,))

        def start_and_send():
            producer.startup()
            producer.send(message(TOPIC, f"refused {label}"))

        try:
            error = refusal(start_and_send)
        finally:
            try:
                producer.shutdown()
            except Exception:  # a producer that never started may refuse to stop
                pass
        consumer = SimpleConsumer(config(apogee, ak, sk), GROUP, {TOPIC: FilterExpression("*")}, await_duration=AWAIT_S)

        def start_and_receive():
            consumer.startup()
            consumer.receive(16, INVISIBLE_S)

        try:
            error = refusal(start_and_receive)
        finally:
            try:
                consumer.shutdown()
            except Exception:
                pass
        print(f"{label}: refused ({error})")
    # Nothing the refused producers sent was stored: the group's next receive is empty.
    consumer = SimpleConsumer(config(apogee, APP_KEY, APP_SECRET), GROUP, {TOPIC: FilterExpression("*")},
                              await_duration=AWAIT_S)
    consumer.startup()
    try:
        late = receive_until(consumer, 1, limit_s=AWAIT_S)
        assert late == [], [m.body for m in late]
    finally:
        consumer.shutdown()


def subscribe_only_topic(apogee):
    """The account may subscribe to the topic but not publish: the send is FORBIDDEN and names
    the topic."""
    producer = Producer(config(apogee, APP_KEY, APP_SECRET), (READ_ONLY_TOPIC,))

    def start_and_send():
        producer.startup()
        producer.send(message(READ_ONLY_TOPIC, "not allowed"))

    try:
        error = refusal(start_and_send)
    finally:
        try:
            producer.shutdown()
        except Exception:
            pass
    assert code_of(error) == FORBIDDEN, repr(error)
    assert str(error) == f"{FORBIDDEN}, Access denied: No permission for topic:{READ_ONLY_TOPIC}", str(error)
    print(f"subscribe-only topic: a send is refused ({error})")


def create_topics(apogee):
    for topic in (TOPIC, READ_ONLY_TOPIC):
        create_topic(apogee, topic, queues=QUEUES, sign=lambda fields: signed(fields, ADMIN_KEY, ADMIN_SECRET))


def main():
    run_scenarios((create_topics, refused_statuses, right_credentials, wrong_credentials, subscribe_only_topic),
                  acl=ACL_FILE)


if __name__ == "__main__":
    main()
