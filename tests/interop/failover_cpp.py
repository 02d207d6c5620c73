"""Controller-mode failover under the official Apache RocketMQ C++ client (the PyPI package
`rocketmq`, which bundles librocketmq.so): a lone `apogee controller` elects the master of two
`apogee broker` processes of one broker set; a C++ Producer sends without pause (sync, one
unique key and body per message) and a C++ PushConsumer (clustering) consumes while the
master is killed with SIGKILL. The client must carry on against the broker the controller
elects next: the load goes on until the new master acknowledged ACKS_AFTER_FAILOVER sends
(the C++ client refreshes its routes every 30 s, so sends fail until then).

Asserted: the controller names the survivor master; every message the producer was told
SEND_OK reaches, with its body intact, both the consumer group that ran through the failover
and a second group started after the kill (which can only read from the new master).
Duplicates are allowed (at-least-once) but counted.

Prints one `failover-cpp` JSON line of figures; the process logs when the suite fails (and
whole, when APOGEE_FAILOVER_DUMP_LOGS is set, when it passes).

Usage: failover_cpp.py PATH_TO_APOGEE_BINARY
"""
import ctypes
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

from rocketmq.client import Message, MessageModel, Producer, PushConsumer, SendStatus

from apogee_process import GET_ROUTEINFO_BY_TOPIC, SUCCESS, UPDATE_AND_CREATE_TOPIC, WAIT_S, address, read_ports
from remoting_wire import Connection

CONTROLLER_GET_REPLICA_INFO, GET_TOPIC_CONFIG = 1004, 351
BROKER_SET = "cpp-failover"
TOPIC = "CppFailoverTopic"
QUEUES = 4
PRODUCER_GROUP = "cpp-failover-producer"
LIVE_GROUP = "cpp-failover-live"
LATE_GROUP = "cpp-failover-late"
# The controller notices a dead broker within half a second.
CONTROLLER_CONF = "scanNotActiveBrokerInterval=500\nscanInactiveMasterInterval=500\n"
# As the Rust controller-mode test: a SEND_OK means every member of the SyncStateSet holds it.
BROKER_CONF = (
    f"brokerClusterName=CppFailoverCluster\nbrokerName={BROKER_SET}\nenableControllerMode=true\n"
    "controllerAddr={controller}\nallAckInSyncStateSet=true\nhaListenPort=0\n"
    "haSendHeartbeatInterval=1000\nhaHousekeepingInterval=5000\nslaveTimeout=3000\n"
    "syncBrokerMetadataPeriod=1000\nbrokerHeartbeatInterval=500\n"
    "controllerHeartBeatTimeoutMills=3000\ncheckSyncStateSetPeriod=1000\n"
    "haMaxTimeSlaveNotCatchup=5000\nflushDiskType=ASYNC_FLUSH\n")
# How long the load runs before the kill, at least.
LOAD_BEFORE_KILL_S = 5
# A controller calls no master dead in its first 10 s (its liveness warm-up); the kill comes
# after, so the figures time a failover, not the warm-up.
CONTROLLER_WARMUP_S = 10 + 1
# Acknowledged sends the new master must take before the load stops.
ACKS_AFTER_FAILOVER = 200
# Longest the load goes on after the kill waiting for those (the C++ client refreshes its
# routes every 30 s, so its sends may fail for that long).
FAILOVER_LIMIT_S = 90
# Longest the consumer may take, once the load stopped, to receive every acknowledged message.
CONSUME_LIMIT_S = 90
# Pause between two sends, and after a failed one.
SEND_PAUSE_S = 0.005
FAILED_SEND_PAUSE_S = 0.05
# Lines of each process log printed when the suite fails.
LOG_TAIL_LINES = 150


def die_with_parent():
    """For `preexec_fn`: on Linux the child gets SIGKILL when this suite dies, so no apogee
    outlives a suite its harness killed. Spawns happen before any thread starts."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL)


class Group:
    """`apogee namesrv`, `apogee controller` and two `apogee broker` in controller mode, each
    in its own directory under `root`, on ports the system chose."""

    def __init__(self, binary, root):
        self.binary, self.root = binary, root
        self.processes = {}
        self.namesrv = None
        self.controller = None
        self.controller_started = None
        self.brokers = []  # (name, "ip:port")

    def spawn(self, what, args):
        work = os.path.join(self.root, what)
        os.makedirs(work)
        ports = os.path.join(work, "ports.json")
        with open(os.path.join(work, "apogee.log"), "w", encoding="utf-8") as log:
            process = subprocess.Popen([self.binary] + args + ["--ports-file", ports],
                                       stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                       preexec_fn=die_with_parent)
        self.processes[what] = process
        return read_ports(ports, process, what)

    def start(self):
        work = self.root
        self.namesrv = self.spawn("namesrv", [
            "namesrv", "--listen", "127.0.0.1:0",
            "--kv-config-path", os.path.join(work, "namesrv-kv.json")])["namesrv"]
        controller_conf = os.path.join(work, "controller.conf")
        with open(controller_conf, "w", encoding="utf-8") as out:
            out.write(CONTROLLER_CONF)
        self.controller = self.spawn("controller", [
            "controller", "--id", "1", "--peers", "1=127.0.0.1:0", "-c", controller_conf,
            "--data-dir", os.path.join(work, "controller-data")])["controller"]
        self.controller_started = time.monotonic()
        broker_conf = os.path.join(work, "broker.conf")
        with open(broker_conf, "w", encoding="utf-8") as out:
            out.write(BROKER_CONF.format(controller=self.controller))
        for name in ("broker-0", "broker-1"):
            ports = self.spawn(name, [
                "broker", "-n", self.namesrv, "-c", broker_conf, "--listen-port", "0", "--grpc-port", "0",
                "--store-dir", os.path.join(work, f"{name}-store")])
            self.brokers.append((name, ports["broker"]))

    def broker_named(self, addr):
        return next((name for name, broker_addr in self.brokers if broker_addr == addr), None)

    def kill_9(self, name):
        process = self.processes[name]
        process.kill()  # SIGKILL
        process.wait(timeout=10)

    def stop(self):
        """Stops every process still running (SIGTERM, SIGKILL after 20 s); the exit codes of
        those that were running, by name."""
        codes = {}
        for name, process in reversed(list(self.processes.items())):
            if process.poll() is not None:
                continue
            process.terminate()
            try:
                codes[name] = process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                codes[name] = f"killed after 20 s: {process.wait(timeout=10)}"
        return codes

    def dump_logs(self, tail=LOG_TAIL_LINES):
        """Prints the last `tail` lines of each process log (all of them when None)."""
        for name in self.processes:
            path = os.path.join(self.root, name, "apogee.log")
            try:
                with open(path, encoding="utf-8", errors="replace") as log:
                    lines = log.readlines()
            except OSError:
                continue
            shown = lines if tail is None else lines[-tail:]
            print(f"--- {name} (last {len(shown)} of {len(lines)} lines) ---")
            sys.stdout.write("".join(shown))


def replica_info(group):
    """The controller's (masterAddress, SyncStateSet) of the broker set; (None, []) while it
    cannot answer."""
    try:
        conn = Connection(address(group.controller))
        try:
            response, body = conn.request(CONTROLLER_GET_REPLICA_INFO, {"brokerName": BROKER_SET})
        finally:
            conn.close()
    except OSError:
        return None, []
    if response["code"] != SUCCESS:
        return None, []
    master = response.get("extFields", {}).get("masterAddress") or None
    members = json.loads(body).get("syncStateSet", []) if body else []
    return master, members


def wait_for_full_sync_state_set(group):
    """The master's address, once the controller's SyncStateSet holds both brokers."""
    deadline = time.monotonic() + WAIT_S
    while True:
        master, members = replica_info(group)
        if len(members) == 2 and group.broker_named(master):
            return master
        assert time.monotonic() < deadline, \
            f"the SyncStateSet never held both brokers (master {master}, members {members})"
        time.sleep(0.2)


def route_master(group, topic):
    """The master address the NameServer routes `topic` to, or None."""
    conn = Connection(address(group.namesrv))
    try:
        response, body = conn.request(GET_ROUTEINFO_BY_TOPIC, {"topic": topic, "acceptStandardJsonOnly": "true"})
    finally:
        conn.close()
    if response["code"] != SUCCESS:
        return None
    for broker in json.loads(body)["brokerDatas"]:
        if broker["brokerName"] == BROKER_SET:
            return broker["brokerAddrs"].get("0")
    return None


def create_topic(group, master):
    """The topic on the master; then waits until the NameServer routes it to the master and the
    slave learnt it from the master's metadata (so a new master has it too)."""
    conn = Connection(address(master))
    response, _ = conn.request(UPDATE_AND_CREATE_TOPIC, {
        "topic": TOPIC, "defaultTopic": "TBW102", "readQueueNums": str(QUEUES),
        "writeQueueNums": str(QUEUES), "perm": "6", "topicFilterType": "SINGLE_TAG",
        "topicSysFlag": "0", "order": "false"})
    conn.close()
    assert response["code"] == SUCCESS, response
    deadline = time.monotonic() + WAIT_S
    while route_master(group, TOPIC) != master:
        assert time.monotonic() < deadline, f"the NameServer never routed {TOPIC} to the master"
        time.sleep(0.1)
    slave = next(addr for _, addr in group.brokers if addr != master)
    while True:
        conn = Connection(address(slave))
        response, _ = conn.request(GET_TOPIC_CONFIG, {"topic": TOPIC})
        conn.close()
        if response["code"] == SUCCESS:
            return
        assert time.monotonic() < deadline, f"the slave never learnt {TOPIC} from the master: {response}"
        time.sleep(0.2)


class Collector:
    """Every delivery to the push consumer: key, body, when."""

    def __init__(self):
        self.lock = threading.Lock()
        self.deliveries = {}  # key -> [(body, monotonic time)]

    def __call__(self, msg):
        key = msg.keys.decode() if msg.keys else ""
        with self.lock:
            self.deliveries.setdefault(key, []).append((msg.body.decode(), time.monotonic()))

    def snapshot(self):
        with self.lock:
            return {key: list(got) for key, got in self.deliveries.items()}


class Watch:
    """From the kill on, when the controller first names the survivor master and when the
    NameServer first routes the topic to it (the broker side of the failover, apart from the
    client's route refresh)."""

    def __init__(self, group, survivor, killed_at):
        self.group, self.survivor, self.killed_at = group, survivor, killed_at
        self.elected_ms = None
        self.routed_ms = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stopping.is_set() and (self.elected_ms is None or self.routed_ms is None):
            now_ms = round((time.monotonic() - self.killed_at) * 1000)
            try:
                if self.elected_ms is None and replica_info(self.group)[0] == self.survivor:
                    self.elected_ms = now_ms
                if self.routed_ms is None and route_master(self.group, TOPIC) == self.survivor:
                    self.routed_ms = now_ms
            except OSError:
                pass
            time.sleep(0.05)

    def stop(self):
        self.stopping.set()
        self.thread.join(timeout=10)


class Load:
    """One thread sending sync, one message after another, each with a unique key and body,
    until stopped."""

    def __init__(self, producer):
        self.producer = producer
        self.lock = threading.Lock()
        self.acked = {}  # key -> (body, send started, acknowledged)
        self.failures = 0  # sends that raised
        self.not_ok = 0  # sends answered with a status other than SEND_OK
        self.failure_kinds = {}  # message -> how many sends failed with it
        self.last_failure = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        seq = 0
        while not self.stopping.is_set():
            seq += 1
            key = f"failover-{seq}"
            body = f"failover body {seq} {time.time_ns()}"
            message = Message(TOPIC)
            message.set_keys(key)
            message.set_tags("TagF")
            message.set_body(body)
            started = time.monotonic()
            try:
                result = self.producer.send_sync(message)
            except Exception as error:  # the client raises on a send it gave up on
                with self.lock:
                    self.failures += 1
                    self.last_failure = f"{type(error).__name__}: {error}"
                    self.failure_kinds[self.last_failure] = self.failure_kinds.get(self.last_failure, 0) + 1
                time.sleep(FAILED_SEND_PAUSE_S)
                continue
            with self.lock:
                if result.status == SendStatus.OK:
                    self.acked[key] = (body, started, time.monotonic())
                else:
                    self.not_ok += 1
            time.sleep(SEND_PAUSE_S)

    def acked_since(self, instant):
        """The acknowledged sends that started after `instant`, in the order acknowledged."""
        with self.lock:
            return sorted((acked for _, started, acked in self.acked.values() if started > instant))


def push_consumer(group, consumer_group, collector, instance):
    """A started C++ PushConsumer (clustering) of the topic; `instance` gives it a client
    instance (and so a route cache) of its own."""
    consumer = PushConsumer(consumer_group, message_model=MessageModel.CLUSTERING)
    consumer.set_namesrv_addr(group.namesrv)
    consumer.set_instance_name(instance)
    consumer.subscribe(TOPIC, collector, "*")
    consumer.start()
    return consumer


def wait_until_consumed(collectors, acked, deadline):
    """Waits, until `deadline`, for every collector to hold every key of `acked`."""
    while time.monotonic() < deadline:
        snapshots = [collector.snapshot() for collector in collectors]
        if all(key in got for got in snapshots for key in acked):
            return
        time.sleep(0.2)


def deliveries(got, acked, killed_at):
    """Figures of one consumer group's deliveries against the acknowledged sends, and the
    acknowledged keys it lacks (in send order) or got with another body."""
    missing = sorted((key for key in acked if key not in got), key=lambda key: int(key.split("-")[1]))
    wrong_body = [key for key, (body, _, _) in acked.items()
                  if key in got and any(delivered != body for delivered, _ in got[key])]
    # Acknowledged by the old master, first delivered after it died: served by the new one.
    served_by_new_master = sum(1 for key, (_, _, acked_at) in acked.items()
                               if acked_at < killed_at and key in got and got[key][0][1] > killed_at)
    all_consumed_at = max((got[key][0][1] for key in acked if key in got), default=killed_at)
    figures = {
        "consumed": sum(1 for key in acked if key in got),
        "deliveries": sum(map(len, got.values())),
        "duplicates": sum(1 for delivered in got.values() if len(delivered) > 1),
        "redeliveries": sum(len(delivered) - 1 for delivered in got.values()),
        "consumed_not_acked": sum(1 for key in got if key not in acked),
        "acked_before_kill_consumed_after": served_by_new_master,
        "missing": len(missing), "wrong_body": len(wrong_body),
        "kill_to_all_consumed_ms": round((all_consumed_at - killed_at) * 1000),
    }
    return figures, missing, wrong_body


def failover(group):
    master = wait_for_full_sync_state_set(group)
    master_name = group.broker_named(master)
    survivor = next(addr for _, addr in group.brokers if addr != master)
    create_topic(group, master)

    # `live` consumes through the failover; `late` is a second group started once the
    # NameServer routes to the new master, so everything it gets, the messages acknowledged
    # before the kill included, comes from the new master.
    live, late = Collector(), Collector()
    consumers = [push_consumer(group, LIVE_GROUP, live, "live")]
    producer = Producer(PRODUCER_GROUP)
    producer.set_namesrv_addr(group.namesrv)
    producer.start()
    load = Load(producer)
    watch = None
    try:
        load.thread.start()
        time.sleep(max(LOAD_BEFORE_KILL_S, group.controller_started + CONTROLLER_WARMUP_S - time.monotonic()))
        with load.lock:
            before_kill = len(load.acked)
        assert before_kill > 0, f"nothing acknowledged before the kill (last failure: {load.last_failure})"

        killed_at = time.monotonic()
        group.kill_9(master_name)
        watch = Watch(group, survivor, killed_at)
        deadline = killed_at + FAILOVER_LIMIT_S
        while watch.routed_ms is None:
            assert time.monotonic() < deadline, (
                f"the NameServer never routed {TOPIC} to the survivor {survivor} (controller says master "
                f"{replica_info(group)[0]}, NameServer routes to {route_master(group, TOPIC)})")
            time.sleep(0.05)
        consumers.append(push_consumer(group, LATE_GROUP, late, "late"))
        while len(load.acked_since(killed_at)) < ACKS_AFTER_FAILOVER:
            assert time.monotonic() < deadline, (
                f"{len(load.acked_since(killed_at))} sends acknowledged in the {FAILOVER_LIMIT_S}s after the "
                f"kill (controller says master {replica_info(group)[0]}, NameServer routes to "
                f"{route_master(group, TOPIC)}, last failure: {load.last_failure})")
            assert load.thread.is_alive(), "the load thread died"
            time.sleep(0.1)
        load.stopping.set()
        load.thread.join(timeout=30)
        assert not load.thread.is_alive(), "a send did not return in 30 s"
        stopped_at = time.monotonic()
        first_new_ack = load.acked_since(killed_at)[0]
        new_master, members = replica_info(group)

        acked = dict(load.acked)
        wait_until_consumed((live, late), acked, stopped_at + CONSUME_LIMIT_S)
        time.sleep(2)  # redeliveries that come late would arrive now
    finally:
        load.stopping.set()
        load.thread.join(timeout=30)
        if watch is not None:
            watch.stop()
        producer.shutdown()
        for consumer in consumers:
            consumer.shutdown()

    live_figures, live_missing, live_wrong = deliveries(live.snapshot(), acked, killed_at)
    late_figures, late_missing, late_wrong = deliveries(late.snapshot(), acked, killed_at)
    figures = {
        "acked": len(acked), "acked_before_kill": before_kill,
        "acked_after_kill": len(load.acked_since(killed_at)),
        "send_failures": load.failures, "send_not_ok": load.not_ok,
        **live_figures,
        "kill_to_controller_elected_ms": watch.elected_ms, "kill_to_route_switched_ms": watch.routed_ms,
        "kill_to_first_ack_on_new_master_ms": round((first_new_ack - killed_at) * 1000),
        "stop_to_all_consumed_ms": max(0, live_figures["kill_to_all_consumed_ms"]
                                       - round((stopped_at - killed_at) * 1000)),
        "late_group": late_figures,
        "killed": master_name, "new_master": group.broker_named(new_master),
        "sync_state_set_after": members,
    }
    print("failover-cpp " + json.dumps(figures))
    for kind, count in sorted(load.failure_kinds.items(), key=lambda item: -item[1]):
        print(f"send failures: {count} x {kind}")
    assert new_master == survivor, f"the controller names {new_master} master, not the survivor {survivor}"
    for what, missing, wrong in (("live group", live_missing, live_wrong),
                                 ("late group", late_missing, late_wrong)):
        assert not wrong, f"{what}: bodies differ from what was sent: {wrong[:5]}"
        assert not missing, (f"{what}: {len(missing)} of {len(acked)} acknowledged messages never consumed "
                             f"within {CONSUME_LIMIT_S}s, first {missing[:10]}")
    print(f"failover: {len(acked)} acknowledged, every one consumed through the failover by the live group "
          f"({live_figures['duplicates']} more than once) and from the new master by a group started after "
          f"the kill ({late_figures['duplicates']} more than once)")


def main():
    binary = sys.argv[1]
    with tempfile.TemporaryDirectory() as root:
        group = Group(binary, root)
        try:
            group.start()
            failover(group)
        except BaseException:
            group.stop()
            group.dump_logs()
            raise
        codes = group.stop()
        if os.environ.get("APOGEE_FAILOVER_DUMP_LOGS"):
            group.dump_logs(tail=None)
        assert all(code == 0 for code in codes.values()), f"exit codes {codes}"


if __name__ == "__main__":
    os.environ.setdefault("ROCKETMQ_CLIENT_LOG_LEVEL", "1")
    # SIGTERM ends the suite through its cleanup, as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    main()
