//! `apogee admin <command>` on the real binary against a running standalone, read as an
//! operator's script reads mqadmin: each command's table headers, and the values in its
//! columns, checked against what the test itself did (topics it made, messages it sent, offsets
//! it moved). Three tests, each on its own standalone, group the commands by area.

mod standalone;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use apogee_client::{LitePullConsumer, Message, Producer};
use apogee_testkit::ApogeeProcess;

/// Longest a route change may take to reach the NameServer (the broker registers at once).
const ROUTE_WAIT: Duration = Duration::from_secs(10);

/// The running standalone and what every admin command is given.
struct Fixture {
    apogee: ApogeeProcess,
    /// Where queried bodies are written (`TMPDIR` of the admin processes); removed on drop.
    tmp: tempfile::TempDir,
}

impl Fixture {
    fn start() -> Self {
        Fixture { apogee: standalone::start(), tmp: tempfile::tempdir().unwrap() }
    }

    fn namesrv(&self) -> &str {
        self.apogee.namesrv_addr()
    }

    fn broker(&self) -> &str {
        self.apogee.broker_addr()
    }

    /// `apogee admin <args>` with the NameServer from the `NAMESRV_ADDR` environment variable.
    fn run(&self, args: &[&str]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_apogee"));
        command
            .arg("admin")
            .args(args)
            .env("NAMESRV_ADDR", self.namesrv())
            .env("TMPDIR", self.tmp.path())
            .env_remove("APOGEE_LOG")
            .env_remove("RUST_BACKTRACE");
        standalone::run(command)
    }

    /// [`Self::run`], which must succeed; its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "apogee admin {args:?} failed ({:?})\nstdout:\n{stdout}\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// [`Self::run`], which must fail with a non-zero status; its standard error.
    fn fails(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            !output.status.success(),
            "apogee admin {args:?} succeeded:\n{}",
            String::from_utf8_lossy(&output.stdout)
        );
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    /// The broker name of the standalone, from clusterList's table.
    fn broker_name(&self) -> String {
        let out = self.ok(&["clusterList"]);
        let rows = table(&out, &CLUSTER_LIST_HEADERS);
        rows[0][1].clone()
    }

    /// Polls `topicRoute -t topic -l` until `accept` takes its broker row (bounded).
    fn wait_route(&self, topic: &str, accept: impl Fn(&[String]) -> bool) -> Vec<String> {
        let started = Instant::now();
        loop {
            let output = self.run(&["topicRoute", "-t", topic, "-l"]);
            if output.status.success() {
                let out = String::from_utf8_lossy(&output.stdout);
                let rows = table(&out, &ROUTE_HEADERS);
                if let Some(row) = rows.first().filter(|row| accept(row)) {
                    return row.clone();
                }
            }
            assert!(started.elapsed() < ROUTE_WAIT, "route of {topic} never became what the test waits for");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

const CLUSTER_LIST_HEADERS: [&str; 12] = [
    "#Cluster Name",
    "#Broker Name",
    "#BID",
    "#Addr",
    "#Version",
    "#InTPS(LOAD)",
    "#OutTPS(LOAD)",
    "#Timer(Progress)",
    "#PCWait(ms)",
    "#Hour",
    "#SPACE",
    "#ACTIVATED",
];
const ROUTE_HEADERS: [&str; 6] =
    ["#ClusterName", "#BrokerName", "#BrokerAddrs", "#ReadQueue", "#WriteQueue", "#Perm"];
const SEND_HEADERS: [&str; 4] = ["#Broker Name", "#QID", "#Send Result", "#MsgId"];
const PROGRESS_HEADERS: [&str; 8] = [
    "#Topic",
    "#Broker Name",
    "#QID",
    "#Broker Offset",
    "#Consumer Offset",
    "#Diff",
    "#Inflight",
    "#LastTime",
];
const OFFSET_HEADERS: [&str; 3] = ["#brokerName", "#queueId", "#offset"];

/// The rows of the table whose header line is exactly `headers` (in order, mqadmin's
/// `#Name` cells), cut at the columns where the headers start, until a blank line. Fails when
/// no such header line is in `out`.
fn table(out: &str, headers: &[&str]) -> Vec<Vec<String>> {
    let mut lines = out.lines();
    let header = lines
        .by_ref()
        .find(|line| {
            let mut rest = *line;
            headers.iter().all(|name| match rest.find(name) {
                Some(at) if rest[..at].trim().is_empty() => {
                    rest = &rest[at + name.len()..];
                    true
                }
                _ => false,
            }) && rest.trim().is_empty()
        })
        .unwrap_or_else(|| panic!("no table with headers {headers:?} in:\n{out}"));
    let mut starts = Vec::new();
    let mut from = 0;
    for name in headers {
        let at = from + header[from..].find(name).unwrap();
        starts.push(at);
        from = at + name.len();
    }
    lines
        .take_while(|line| !line.trim().is_empty())
        .map(|line| {
            (0..starts.len())
                .map(|index| {
                    let begin = starts[index].min(line.len());
                    let end = starts.get(index + 1).map_or(line.len(), |next| (*next).min(line.len()));
                    line.get(begin..end).unwrap_or("").trim().to_owned()
                })
                .collect()
        })
        .collect()
}

/// The `%-20s %s` field block of a message (queryMsgBy*), as a map from the names
/// (`Topic:`, `Queue Offset:`, ...) to the values.
fn fields(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|line| {
            let name = line.get(..20)?.trim_end();
            let value = line.get(21..)?;
            name.ends_with(':').then(|| (name.to_owned(), value.trim().to_owned()))
        })
        .collect()
}

/// sendMessage's one row: `(broker name, queue id, result, message id)`.
fn sent(out: &str) -> (String, String, String, String) {
    let rows = table(out, &SEND_HEADERS);
    assert_eq!(rows.len(), 1, "{out}");
    let row = &rows[0];
    (row[0].clone(), row[1].clone(), row[2].clone(), row[3].clone())
}

/// `(queue id, broker offset, consumer offset, diff)` of each consumerProgress row of `topic`,
/// and the `Consume Diff Total` footer.
fn progress(out: &str, topic: &str) -> (Vec<(i32, i64, i64, i64)>, i64) {
    let rows = table(out, &PROGRESS_HEADERS)
        .into_iter()
        .filter(|row| row[0] == topic)
        .map(|row| {
            (
                row[2].parse().unwrap(),
                row[3].parse().unwrap(),
                row[4].parse().unwrap(),
                row[5].parse().unwrap(),
            )
        })
        .collect();
    let total = out
        .lines()
        .find_map(|line| line.strip_prefix("Consume Diff Total: "))
        .unwrap_or_else(|| panic!("no diff total in:\n{out}"))
        .parse()
        .unwrap();
    (rows, total)
}

fn body_at(path: &str) -> String {
    assert!(!path.is_empty());
    std::fs::read_to_string(Path::new(path)).unwrap_or_else(|error| panic!("body file {path}: {error}"))
}

#[test]
fn topic_and_message_commands() {
    let fx = Fixture::start();
    let broker = fx.broker().to_owned();

    // clusterList: the one broker with its address, version and state.
    let out = fx.ok(&["clusterList"]);
    let rows = table(&out, &CLUSTER_LIST_HEADERS);
    assert_eq!(rows.len(), 1, "{out}");
    let row = &rows[0];
    assert_eq!((row[0].as_str(), row[2].as_str(), row[3].as_str()), ("DefaultCluster", "0", broker.as_str()));
    assert_eq!((row[4].as_str(), row[11].as_str()), ("V5_3_3", "true"));
    let name = row[1].clone();
    assert!(!name.is_empty());

    // updateTopic with mqadmin's long options and -n; then topicList and topicRoute show it.
    let out = fx.ok(&[
        "updateTopic",
        "--namesrvAddr",
        fx.namesrv(),
        "--clusterName",
        "DefaultCluster",
        "--topic",
        "AdminT",
        "-r",
        "4",
        "-w",
        "4",
    ]);
    assert!(out.contains(&format!("create topic to {broker} success.")), "{out}");
    assert!(
        out.contains("TopicConfig [topicName=AdminT, readQueueNums=4, writeQueueNums=4, perm=RW-"),
        "{out}"
    );
    let route = fx.wait_route("AdminT", |_| true);
    assert_eq!(route, ["DefaultCluster", &name, &format!("{{0={broker}}}"), "4", "4", "6"]);
    let out = fx.ok(&["topicRoute", "-t", "AdminT", "-l"]);
    let rows = table(&out, &ROUTE_HEADERS);
    assert_eq!(rows[1], ["Total:", "1", "", "4", "4", ""], "{out}");
    assert!(fx.ok(&["topicList"]).lines().any(|line| line == "AdminT"));
    let json: serde_json::Value = serde_json::from_str(&fx.ok(&["topicRoute", "-t", "AdminT"])).unwrap();
    assert_eq!(json["queueDatas"][0]["readQueueNums"], 4);
    assert_eq!(json["brokerDatas"][0]["brokerAddrs"]["0"], broker.as_str());
    assert_eq!(fx.ok(&["topicClusterList", "-t", "AdminT"]), "DefaultCluster\n");

    // sendMessage: two to queue 1, one to queue 2.
    let (b1, q1, status, id_one) = sent(&fx.ok(&[
        "sendMessage",
        "-t",
        "AdminT",
        "-p",
        "body-one",
        "-k",
        "K1",
        "-c",
        "TagA",
        "-b",
        &name,
        "-i",
        "1",
    ]));
    assert_eq!((b1.as_str(), q1.as_str(), status.as_str()), (name.as_str(), "1", "SEND_OK"));
    let (_, q2, _, id_two) =
        sent(&fx.ok(&["sendMessage", "-t", "AdminT", "-p", "body-two", "-b", &name, "-i", "1"]));
    assert_eq!(q2, "1");
    let (_, q3, _, _) =
        sent(&fx.ok(&["sendMessage", "-t", "AdminT", "-p", "body-three", "-b", &name, "-i", "2"]));
    assert_eq!(q3, "2");

    // topicStatus: min and max offset of each queue.
    let out = fx.ok(&["topicStatus", "-t", "AdminT"]);
    let mut rows = table(&out, &["#Broker Name", "#QID", "#Min Offset", "#Max Offset", "#Last Updated"]);
    assert_eq!(rows.pop().map(|row| row[0].clone()).as_deref(), Some("Topic Put TPS: 0"), "{out}");
    let offsets: Vec<(&str, &str, &str)> =
        rows.iter().map(|r| (r[1].as_str(), r[2].as_str(), r[3].as_str())).collect();
    assert_eq!(offsets, [("0", "0", "0"), ("1", "0", "2"), ("2", "0", "1"), ("3", "0", "0")], "{out}");
    assert!(rows[1][4].starts_with("20") && rows[0][4].is_empty(), "{out}");
    assert!(out.contains("Topic Put TPS:"));

    // queryMsgByKey finds the keyed message where it was sent.
    let out = fx.ok(&["queryMsgByKey", "-t", "AdminT", "-k", "K1"]);
    assert_eq!(table(&out, &["#Message ID", "#QID", "#Offset"]), [[id_one.as_str(), "1", "0"]]);

    // queryMsgByUniqueKey by the id sendMessage printed: the fields and the body file.
    let out = fx.ok(&["queryMsgByUniqueKey", "-t", "AdminT", "-i", &id_one]);
    let block = fields(&out);
    assert_eq!(block["Topic:"], "AdminT");
    assert_eq!(block["Tags:"], "[TagA]");
    assert_eq!(block["Keys:"], "[K1]");
    assert_eq!((block["Queue ID:"].as_str(), block["Queue Offset:"].as_str()), ("1", "0"));
    assert_eq!(body_at(&block["Message Body Path:"]), "body-one");
    assert!(out.contains("WARN: No Consumer"), "{out}");

    // queryMsgByOffset: queue 1, offset 1 is the second message; its offset id then finds it
    // by id, and the unique id finds it by id too (mqadmin's fallback).
    let out = fx.ok(&["queryMsgByOffset", "-t", "AdminT", "-b", &name, "-i", "1", "-o", "1", "-f", "UTF-8"]);
    let block = fields(&out);
    assert_eq!(block["Message Body:"], "body-two");
    assert_eq!(block["Queue Offset:"], "1");
    let offset_id = block["OffsetID:"].clone();
    let out = fx.ok(&["queryMsgById", "-t", "AdminT", "-i", &offset_id, "-f", "UTF-8"]);
    let block = fields(&out);
    assert_eq!(
        (block["OffsetID:"].as_str(), block["Message Body:"].as_str()),
        (offset_id.as_str(), "body-two")
    );
    assert_eq!(block["Store Host:"], broker);
    let out = fx.ok(&["queryMsgById", "-t", "AdminT", "-i", &id_two, "-f", "UTF-8"]);
    assert_eq!(fields(&out)["Message Body:"], "body-two");

    // printMsg: every message once, per queue bounds, progress on standard error.
    let output = fx.run(&["printMsg", "-t", "AdminT"]);
    assert!(output.status.success());
    let out = String::from_utf8_lossy(&output.stdout);
    let bodies: Vec<&str> = out
        .lines()
        .filter(|line| line.starts_with("MSGID: "))
        .filter_map(|line| line.rsplit_once("BODY: "))
        .map(|(_, b)| b)
        .collect();
    assert_eq!(bodies, ["body-one", "body-two", "body-three"], "{out}");
    assert!(out.contains(&format!(
        "minOffset=0, maxOffset=2, MessageQueue [topic=AdminT, brokerName={name}, queueId=1]"
    )));
    assert!(out.contains(&format!("MessageQueue [topic=AdminT, brokerName={name}, queueId=1] print msg finished. status=FOUND, offset=2")));
    assert!(String::from_utf8_lossy(&output.stderr).contains("printMsg queues: 4/4"));

    // consumeMessage from queue 1 offset 1: exactly the second message.
    let out = fx.ok(&["consumeMessage", "-t", "AdminT", "-b", &name, "-i", "1", "-o", "1"]);
    let lines: Vec<&str> = out.lines().filter(|line| line.starts_with("MSGID: ")).collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(lines[0].starts_with(&format!("MSGID: {id_two} ")) && lines[0].ends_with("BODY: body-two"));
    assert!(out.contains("Consume ok, 1 messages"));

    // updateTopicPerm, then deleteTopic.
    let out = fx.ok(&["updateTopicPerm", "-t", "AdminT", "-p", "4", "-b", &broker]);
    assert_eq!(out.trim(), format!("update topic perm from 6 to 4 in {broker} success."));
    fx.wait_route("AdminT", |row| row[5] == "4");
    assert_eq!(
        fx.ok(&["updateTopicPerm", "-t", "AdminT", "-p", "4", "-b", &broker]).trim(),
        "new perm equals to the old one!"
    );
    let out = fx.ok(&["deleteTopic", "-t", "AdminT", "-c", "DefaultCluster"]);
    assert!(out.contains("delete topic [AdminT] from cluster [DefaultCluster] success."), "{out}");
    let stderr = fx.fails(&["topicRoute", "-t", "AdminT"]);
    assert!(stderr.contains("GET_ROUTEINFO_BY_TOPIC (105) of AdminT"), "{stderr}");
}

#[test]
fn group_and_offset_commands() {
    let fx = Fixture::start();
    let broker = fx.broker().to_owned();
    let name = fx.broker_name();
    fx.ok(&["updateTopic", "-b", &broker, "-t", "AdminO", "-r", "2", "-w", "2"]);
    fx.wait_route("AdminO", |_| true);
    for (body, queue) in [("o-1", "0"), ("o-2", "0"), ("o-3", "1")] {
        fx.ok(&["sendMessage", "-t", "AdminO", "-p", body, "-b", &name, "-i", queue]);
    }

    let out = fx.ok(&["updateSubGroup", "-b", &broker, "-g", "AdminG", "-r", "5"]);
    assert!(out.contains(&format!("create subscription group to {broker} success.")), "{out}");
    assert!(out.contains("groupName=AdminG") && out.contains("retryMaxTimes=5"), "{out}");

    let (rows, total) = progress(&fx.ok(&["consumerProgress", "-g", "AdminG", "-t", "AdminO"]), "AdminO");
    assert_eq!((rows, total), (vec![(0, 2, 0, 2), (1, 1, 0, 1)], 3));

    // skipAccumulatedMessage: every queue to its end.
    let out = fx.ok(&["skipAccumulatedMessage", "-g", "AdminG", "-t", "AdminO"]);
    assert_eq!(table(&out, &OFFSET_HEADERS), [[name.as_str(), "0", "2"], [name.as_str(), "1", "1"]]);
    let (rows, total) = progress(&fx.ok(&["consumerProgress", "-g", "AdminG", "-t", "AdminO"]), "AdminO");
    assert_eq!((rows, total), (vec![(0, 2, 2, 0), (1, 1, 1, 0)], 0));

    // resetOffsetByTime back to the beginning of time, then one queue to an offset.
    let out = fx.ok(&["resetOffsetByTime", "-g", "AdminG", "-t", "AdminO", "-s", "0"]);
    assert!(
        out.contains("start reset consumer offset by specified, group[AdminG], topic[AdminO], force[true]")
    );
    assert_eq!(table(&out, &OFFSET_HEADERS), [[name.as_str(), "0", "0"], [name.as_str(), "1", "0"]]);
    let (rows, total) = progress(&fx.ok(&["consumerProgress", "-g", "AdminG", "-t", "AdminO"]), "AdminO");
    assert_eq!((rows, total), (vec![(0, 2, 0, 2), (1, 1, 0, 1)], 3));
    let out = fx.ok(&[
        "resetOffsetByTime",
        "-g",
        "AdminG",
        "-t",
        "AdminO",
        "-s",
        "now",
        "-b",
        &broker,
        "-q",
        "0",
        "-o",
        "1",
    ]);
    assert_eq!(out.trim(), "reset consumer offset to 1");
    let (rows, _) = progress(&fx.ok(&["consumerProgress", "-g", "AdminG", "-t", "AdminO"]), "AdminO");
    assert_eq!(rows, vec![(0, 2, 1, 1), (1, 1, 0, 1)]);

    // statsAll: the group's accumulation on the topic; this broker keeps no TPS statistics.
    let output = fx.run(&["statsAll", "-t", "AdminO"]);
    assert!(output.status.success());
    let out = String::from_utf8_lossy(&output.stdout);
    let headers =
        ["#Topic", "#Consumer Group", "#Accumulation", "#InTPS", "#OutTPS", "#InMsg24Hour", "#OutMsg24Hour"];
    assert_eq!(table(&out, &headers), [["AdminO", "AdminG", "2", "-", "-", "-", "-"]]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("statsAll topics: 1/1"));

    // topicList -c: the topic with its cluster and group.
    let out = fx.ok(&["topicList", "-c"]);
    let rows = table(&out, &["#Cluster Name", "#Topic", "#Consumer Group"]);
    assert!(
        rows.contains(&vec!["DefaultCluster".to_owned(), "AdminO".to_owned(), "AdminG".to_owned()]),
        "{out}"
    );

    // Connections of live clients of this process.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let producer = Producer::builder().namesrv(fx.namesrv()).group("AdminP").start().await.unwrap();
        producer.send(Message::new("AdminO", bytes_of("from-producer"))).await.unwrap();
        // The broker learns of producers from heartbeats; send one now rather than wait.
        producer.instance().send_heartbeat_to_all_brokers().await;
        let out = fx.ok(&["producerConnection", "-g", "AdminP", "-t", "AdminO"]);
        let client_id = producer.instance().client_id().to_owned();
        let cells: Vec<&str> = out.lines().next().unwrap_or_default().split_whitespace().collect();
        assert_eq!(
            (cells[0], cells[1], cells[3], cells[4]),
            ("0001", client_id.as_str(), "RUST", "V5_3_3"),
            "{out}"
        );
        assert!(cells[2].starts_with("127.0.0.1:"), "{out}");
        assert_eq!(out.lines().count(), 1, "{out}");
        producer.shutdown().await;

        let consumer =
            LitePullConsumer::builder().group("AdminLive").namesrv(fx.namesrv()).start().await.unwrap();
        consumer.subscribe("AdminO", "TagX || TagY").await.unwrap();
        let started = Instant::now();
        let out = loop {
            let output = fx.run(&["consumerConnection", "-g", "AdminLive"]);
            if output.status.success() {
                break String::from_utf8_lossy(&output.stdout).into_owned();
            }
            assert!(started.elapsed() < ROUTE_WAIT, "the consumer never showed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let clients = table(&out, &["#ClientId", "#ClientAddr", "#Language", "#Version"]);
        assert_eq!(clients.len(), 1, "{out}");
        assert_eq!((clients[0][2].as_str(), clients[0][3].as_str()), ("RUST", "V5_3_3"), "{out}");
        assert_eq!(table(&out, &["#Topic", "#SubExpression"]), [["AdminO", "TagX || TagY"]], "{out}");
        assert!(
            out.contains("ConsumeType: CONSUME_ACTIVELY") && out.contains("MessageModel: CLUSTERING"),
            "{out}"
        );
        consumer.shutdown().await;
    });

    // A group nobody runs: the error names the request, the broker's code and its meaning.
    let stderr = fx.fails(&["consumerConnection", "-g", "AdminG"]);
    assert!(stderr.contains("GET_CONSUMER_CONNECTION_LIST (203) of AdminG"), "{stderr}");
    assert!(stderr.contains("CONSUMER_NOT_ONLINE (206)"), "{stderr}");

    let out = fx.ok(&["deleteSubGroup", "-b", &broker, "-g", "AdminG", "-r", "true"]);
    assert_eq!(out.trim(), format!("delete subscription group [AdminG] from broker [{broker}] success."));
}

fn bytes_of(text: &str) -> bytes::Bytes {
    bytes::Bytes::copy_from_slice(text.as_bytes())
}

#[test]
fn broker_and_namesrv_commands() {
    let fx = Fixture::start();
    let broker = fx.broker().to_owned();
    let name = fx.broker_name();

    // No command: mqadmin's list of commands.
    let list = fx.ok(&[]);
    for command in [
        "updateTopic",
        "deleteTopic",
        "topicList",
        "topicRoute",
        "topicStatus",
        "topicClusterList",
        "updateTopicPerm",
        "updateSubGroup",
        "deleteSubGroup",
        "consumerProgress",
        "consumerConnection",
        "producerConnection",
        "resetOffsetByTime",
        "skipAccumulatedMessage",
        "queryMsgById",
        "queryMsgByKey",
        "queryMsgByOffset",
        "queryMsgByUniqueKey",
        "printMsg",
        "sendMessage",
        "consumeMessage",
        "clusterList",
        "brokerStatus",
        "getBrokerConfig",
        "updateBrokerConfig",
        "wipeWritePerm",
        "addWritePerm",
        "getNamesrvConfig",
        "updateNamesrvConfig",
        "statsAll",
    ] {
        assert!(
            list.lines().any(|line| line.trim_start().starts_with(&format!("{command} "))),
            "{command}: {list}"
        );
    }

    // brokerStatus: the runtime keys, sorted, `%-32s: %s`.
    let out = fx.ok(&["brokerStatus", "-b", &broker]);
    assert!(out.lines().any(|line| line == format!("{:<32}: V5_3_3", "brokerVersionDesc")), "{out}");
    assert!(out.lines().any(|line| line == format!("{:<32}: true", "brokerActive")), "{out}");
    let keys: Vec<&str> =
        out.lines().filter_map(|line| line.split_once(':')).map(|(key, _)| key.trim()).collect();
    assert!(keys.contains(&"commitLogMaxOffset") && keys.windows(2).all(|pair| pair[0] <= pair[1]), "{out}");
    let out = fx.ok(&["brokerStatus", "-c", "DefaultCluster"]);
    assert!(out.lines().any(|line| line == format!("{broker:<24} {:<32}: true", "brokerActive")), "{out}");

    // getBrokerConfig / updateBrokerConfig.
    let config_line = |key: &str, value: &str| format!("{key:<50}=  {value}");
    let out = fx.ok(&["getBrokerConfig", "-b", &broker]);
    assert_eq!(out.lines().next(), Some(format!("============{broker}============").as_str()));
    assert!(out.lines().any(|line| line == config_line("brokerClusterName", "DefaultCluster")), "{out}");
    assert!(out.lines().any(|line| line == config_line("brokerPermission", "6")), "{out}");
    fx.ok(&["updateTopic", "-c", "DefaultCluster", "-t", "AdminP"]);
    fx.wait_route("AdminP", |row| row[5] == "6");
    let out = fx.ok(&["updateBrokerConfig", "-b", &broker, "-k", "brokerPermission", "-v", "4"]);
    assert_eq!(out.trim(), format!("update broker config success, {broker}"));
    let out = fx.ok(&["getBrokerConfig", "-c", "DefaultCluster"]);
    assert!(out.contains(&format!("============Master: {broker}============")), "{out}");
    assert!(out.lines().any(|line| line == config_line("brokerPermission", "4")), "{out}");
    // The broker registered its narrowed permission at once.
    fx.wait_route("AdminP", |row| row[5] == "4");
    fx.ok(&["updateBrokerConfig", "-c", "DefaultCluster", "-k", "brokerPermission", "-v", "6"]);
    fx.wait_route("AdminP", |row| row[5] == "6");
    // Keys the broker cannot change: the refusal names request, broker, code and remark.
    let stderr = fx.fails(&["updateBrokerConfig", "-b", &broker, "-k", "listenPort", "-v", "1"]);
    assert!(
        stderr.contains(&format!("UPDATE_BROKER_CONFIG (25) of listenPort=1 to {broker} failed")),
        "{stderr}"
    );
    assert!(
        stderr.contains("SYSTEM_ERROR (1): listenPort cannot be changed while the broker runs"),
        "{stderr}"
    );
    let stderr = fx.fails(&["updateBrokerConfig", "-b", &broker, "-k", "brokerConfigPath", "-v", "x"]);
    assert!(stderr.contains("NO_PERMISSION (16): Can not update config in black list."), "{stderr}");

    // wipeWritePerm / addWritePerm on the NameServer.
    let namesrv = fx.namesrv().to_owned();
    let out = fx.ok(&["wipeWritePerm", "-b", &name]);
    let prefix = format!("wipe write perm of broker[{name}] in name server[{namesrv}] OK, ");
    let wiped: usize = out.trim().strip_prefix(&prefix).unwrap_or_else(|| panic!("{out}")).parse().unwrap();
    assert!(wiped > 0, "{out}");
    assert_eq!(fx.wait_route("AdminP", |_| true)[5], "4");
    let out = fx.ok(&["addWritePerm", "-b", &name]);
    assert_eq!(out.trim(), format!("add write perm of broker[{name}] in name server[{namesrv}] OK, {wiped}"));
    assert_eq!(fx.wait_route("AdminP", |_| true)[5], "6");

    // getNamesrvConfig / updateNamesrvConfig.
    let out = fx.ok(&["getNamesrvConfig"]);
    assert_eq!(out.lines().next(), Some(format!("============{namesrv}============").as_str()));
    assert!(
        out.lines().any(|line| line == config_line("deleteTopicWithBrokerRegistration", "false")),
        "{out}"
    );
    let out = fx.ok(&["updateNamesrvConfig", "-k", "deleteTopicWithBrokerRegistration", "-v", "true"]);
    assert!(
        out.contains("update name server config success!")
            && out.contains("deleteTopicWithBrokerRegistration : true")
    );
    let out = fx.ok(&["getNamesrvConfig"]);
    assert!(
        out.lines().any(|line| line == config_line("deleteTopicWithBrokerRegistration", "true")),
        "{out}"
    );

    // statsAll over every topic shows its progress; a topic nobody consumes says so.
    let output = fx.run(&["statsAll"]);
    assert!(output.status.success());
    let out = String::from_utf8_lossy(&output.stdout);
    let headers =
        ["#Topic", "#Consumer Group", "#Accumulation", "#InTPS", "#OutTPS", "#InMsg24Hour", "#OutMsg24Hour"];
    let rows = table(&out, &headers);
    assert!(
        rows.contains(&["AdminP", "", "0", "-", "", "-", "NO_CONSUMER"].map(str::to_owned).to_vec()),
        "{out}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("statsAll topics: {}/{} done", rows.len(), rows.len())), "{stderr}");

    // Where the NameServer comes from, and what a wrong one or wrong options give.
    let output = standalone::run({
        let mut command = Command::new(env!("CARGO_BIN_EXE_apogee"));
        command.args(["admin", "topicList"]).env_remove("NAMESRV_ADDR");
        command
    });
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no NameServer address"));
    let stderr = fx.fails(&["topicList", "-n", "127.0.0.1:1"]);
    assert!(stderr.contains("GET_ALL_TOPIC_LIST_FROM_NAMESERVER (206) from 127.0.0.1:1 failed"), "{stderr}");
    let output = fx.run(&["updateTopic", "-t", "X"]);
    assert_eq!(output.status.code(), Some(2), "clap's usage error");
    let output = fx.run(&["noSuchCommand"]);
    assert_eq!(output.status.code(), Some(2));
}
