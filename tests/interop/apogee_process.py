"""`apogee standalone` for the Python peers: started on ports the system chose, stopped with
SIGTERM, and the one way a suite makes a topic and waits for its route."""
import json
import os
import subprocess
import sys
import tempfile
import time

from remoting_wire import Connection, decode_records

PULL_MESSAGE, UPDATE_AND_CREATE_TOPIC, GET_ROUTEINFO_BY_TOPIC = 11, 17, 105
SUCCESS, TOPIC_NOT_EXIST, PULL_NOT_FOUND, PULL_RETRY_IMMEDIATELY = 0, 17, 19, 20
WAIT_S = 60


def poll(read, done, period_s=0.5, limit_s=WAIT_S):
    """Calls `read` every `period_s` until `done` holds of what it gave or `limit_s` passed;
    gives what it read last."""
    deadline = time.monotonic() + limit_s
    while True:
        value = read()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(period_s)


def read_ports(path, process, what):
    """The ports file `path` that `process` (an apogee started with `--ports-file path`, named
    `what` in errors) writes once it listens; fails as soon as the process exits instead."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if os.path.exists(path):  # renamed into place whole
            with open(path, encoding="utf-8") as ports:
                return json.load(ports)
        assert process.poll() is None, f"{what} exited during start: {process.returncode}"
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not write its ports file {path} in {WAIT_S}s")


def address(text):
    """The (host, port) of an `IP:PORT` text, as `Connection` takes it."""
    host, port = text.rsplit(":", 1)
    return host, int(port)


def listening_port(line):
    """The port of an `apogee ... listening on IP:PORT` line."""
    return int(line.rsplit(":", 1)[1])


class Apogee:
    """`apogee standalone` on ports the system chose (port 0), stopped with SIGTERM."""

    def __init__(self, binary, data_dir, broker_conf=None):
        self.binary, self.data_dir = binary, data_dir
        self.broker_conf = broker_conf
        self.namesrv_port = None
        self.broker_port = None
        self.grpc_port = None
        self.process = None

    @property
    def namesrv(self):
        return f"127.0.0.1:{self.namesrv_port}"

    @property
    def grpc(self):
        """The gRPC endpoint as the 5.x clients take it: `host:port`."""
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def broker(self):
        return ("127.0.0.1", self.broker_port)

    def start(self):
        command = [self.binary, "standalone", "--data-dir", self.data_dir,
                   "--namesrv-listen", "127.0.0.1:0", "--broker-port", "0", "--grpc-port", "0",
                   "--dashboard-port", "0"]
        if self.broker_conf is not None:
            path = os.path.join(self.data_dir, "broker.conf")
            with open(path, "w", encoding="utf-8") as conf:
                conf.write(self.broker_conf)
            command += ["-c", path]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError("apogee exited during start")
            if "apogee namesrv listening on" in line:
                self.namesrv_port = listening_port(line.strip())
            if "apogee broker listening on" in line:
                self.broker_port = listening_port(line.strip())
            if "apogee grpc listening on" in line:
                self.grpc_port = listening_port(line.strip())
                return
        raise RuntimeError("apogee did not start")

    def stop(self):
        self.process.terminate()
        code = self.process.wait(timeout=30)
        assert code == 0, f"apogee exited with {code}"


def create_topic(apogee, topic, queues=4, order=False, message_type=None, sign=None):
    """UPDATE_AND_CREATE_TOPIC as mqadmin sends it (with `+message.type=` when given, its
    fields passed through `sign` when the broker checks ACL), then wait for the NameServer
    route."""
    conn = Connection(apogee.broker)
    fields = {
        "topic": topic, "defaultTopic": "TBW102", "readQueueNums": str(queues),
        "writeQueueNums": str(queues), "perm": "6", "topicFilterType": "SINGLE_TAG",
        "topicSysFlag": "0", "order": "true" if order else "false"}
    if message_type is not None:
        fields["attributes"] = f"+message.type={message_type}"
    response, _ = conn.request(UPDATE_AND_CREATE_TOPIC, sign(fields) if sign else fields)
    conn.close()
    assert response["code"] == SUCCESS, response
    namesrv = Connection(("127.0.0.1", apogee.namesrv_port))
    deadline = time.monotonic() + WAIT_S
    while namesrv.request(GET_ROUTEINFO_BY_TOPIC, {"topic": topic})[0]["code"] != SUCCESS:
        assert time.monotonic() < deadline, f"route of {topic} never appeared"
        time.sleep(0.1)
    namesrv.close()


def pull_all(apogee, topic, group, queue_id=0, absent_ok=False):
    """Every message in queue `queue_id` of `topic`, read from offset 0 until the queue's end
    (none when the topic does not exist yet and `absent_ok`)."""
    conn = Connection(apogee.broker)
    got, offset = [], 0
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        response, body = conn.request(PULL_MESSAGE, {
            "consumerGroup": group, "topic": topic, "queueId": str(queue_id), "queueOffset": str(offset),
            "maxMsgNums": "32", "sysFlag": "4", "commitOffset": "0", "suspendTimeoutMillis": "0",
            "subscription": "*", "subVersion": "0", "expressionType": "TAG"})
        if response["code"] == SUCCESS:
            records = decode_records(body)
            got += records
            offset = int(response["extFields"]["nextBeginOffset"])
            continue
        if absent_ok and response["code"] == TOPIC_NOT_EXIST:
            break
        assert response["code"] in (PULL_NOT_FOUND, PULL_RETRY_IMMEDIATELY), response
        break
    conn.close()
    return got


def plain_acl(app, admin, topic_perms):
    """A `plain_acl.yml` that whitelists no address: the application account `app` (access
    key, secret key) may use only `topic_perms` (`TOPIC=PERM` entries) and subscribe as any
    group; the account `admin` is an admin."""
    perms = "".join(f"      - {perm}\n" for perm in topic_perms)
    return f"""\
accounts:
  - accessKey: {app[0]}
    secretKey: {app[1]}
    defaultTopicPerm: DENY
    defaultGroupPerm: SUB
    topicPerms:
{perms}  - accessKey: {admin[0]}
    secretKey: {admin[1]}
    admin: true
"""


def run_scenarios(scenarios, broker_conf=None, acl=None):
    """Runs each scenario (a function of the running Apogee) against one `apogee standalone`
    started from the binary named on the command line, then stops it. With `acl` (the text of
    a `plain_acl.yml`), the broker checks ACL against that file."""
    binary = sys.argv[1]
    with tempfile.TemporaryDirectory() as data_dir:
        if acl is not None:
            acl_path = os.path.join(data_dir, "plain_acl.yml")
            with open(acl_path, "w", encoding="utf-8") as acl_file:
                acl_file.write(acl)
            broker_conf = f"aclEnable=true\nrocketmq.acl.plain.file={acl_path}\n" + (broker_conf or "")
        apogee = Apogee(binary, data_dir, broker_conf=broker_conf)
        apogee.start()
        try:
            for scenario in scenarios:
                scenario(apogee)
        finally:
            apogee.stop()
