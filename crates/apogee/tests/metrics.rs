//! Prometheus export on the real binary, read as a scraper reads it: after N sends the scrape
//! says N for the topic, with RocketMQ 5.x's names and labels, and consumption, connections and
//! lag show too.

mod standalone;

use std::time::{Duration, Instant};

use apogee_client::{Message, Producer};
use apogee_testkit::ApogeeProcess;

/// Metrics on, on a port the system picks, on loopback, with one constant label of our own.
const METRICS_ON: &str = "metricsExporterType=PROM\nmetricsPromExporterHost=127.0.0.1\n\
                          metricsPromExporterPort=0\nmetricsLabel=dc:test-dc\n";
/// Longest wait for a figure to show in a scrape.
const SCRAPE_LIMIT: Duration = Duration::from_secs(10);

/// The value of the sample `name` whose labels include every one of `labels`; `None` if no
/// such sample, and a failure if more than one matches.
fn sample(scrape: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = scrape
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, series_labels) = series.split_once('{').unwrap_or((series, ""));
            let wanted = series_name == name
                && labels.iter().all(|(key, value)| series_labels.contains(&format!("{key}=\"{value}\"")));
            wanted.then(|| value.parse().ok()).flatten()
        })
        .collect();
    assert!(matching.len() <= 1, "{name} {labels:?} matches {} samples", matching.len());
    matching.first().copied()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_counts_every_message_sent_and_handed_out() {
    let config_dir = tempfile::tempdir().unwrap();
    let apogee = standalone::start_configured(config_dir.path(), METRICS_ON);
    let metrics = apogee.metrics_addr().expect("metrics exported").to_owned();
    let (status, body) = standalone::http_get(&metrics, "/-/healthy");
    assert!(status.contains("200"), "{status}: {body}");

    let topic = "MetricsTopic";
    let producer =
        Producer::builder().group("metrics-producer").namesrv(apogee.namesrv_addr()).start().await.unwrap();
    let body_bytes = 100;
    let message = |index: usize| Message::new(topic, vec![b'x'; body_bytes]).with_keys([format!("K{index}")]);
    for index in 0..25 {
        producer.send(message(index)).await.expect("sent");
    }
    producer.send_batch((25..30).map(message).collect()).await.expect("batch sent");
    let fifo = Message::new(topic, vec![b'f'; body_bytes]).with_property("__SHARDINGKEY", "group-1");
    producer.send(fifo).await.expect("fifo sent");
    let sent_normal = 30.0;

    let (status, scrape) = standalone::http_get(&metrics, "/metrics");
    assert!(status.contains("200"), "{status}");
    let node = [("cluster", "DefaultCluster"), ("node_type", "broker"), ("dc", "test-dc")];
    let normal = [("topic", topic), ("message_type", "normal"), ("is_system", "false")];
    let with_node = |labels: &[(&'static str, &'static str)]| [labels, &node[..]].concat();
    assert_eq!(
        sample(&scrape, "rocketmq_messages_in_total", &with_node(&normal)),
        Some(sent_normal),
        "{scrape}"
    );
    let fifo_labels = [("topic", topic), ("message_type", "fifo")];
    assert_eq!(sample(&scrape, "rocketmq_messages_in_total", &fifo_labels), Some(1.0));
    let bytes_in = sample(&scrape, "rocketmq_throughput_in_total", &normal).expect("bytes in");
    assert!(bytes_in >= sent_normal * body_bytes as f64, "{bytes_in} bytes for {sent_normal} messages");
    // One size observation per put: 25 single sends and one batch.
    assert_eq!(sample(&scrape, "rocketmq_message_size_count", &normal), Some(26.0));
    assert_eq!(
        sample(
            &scrape,
            "rocketmq_message_size_bucket",
            &[("topic", topic), ("message_type", "normal"), ("le", "+Inf")]
        ),
        Some(26.0)
    );
    let producers =
        sample(&scrape, "rocketmq_producer_connections", &[("language", "rust")]).expect("producer gauge");
    assert!(producers >= 1.0);
    assert!(sample(&scrape, "rocketmq_topic_number", &[]).unwrap() >= 1.0);
    assert_eq!(sample(&scrape, "rocketmq_broker_permission", &[]), Some(6.0));
    assert!(sample(&scrape, "rocketmq_storage_size_bytes", &[("storage_type", "local")]).unwrap() > 0.0);
    assert!(sample(&scrape, "process_resident_memory_bytes", &[]).unwrap() > 1e6);
    // Every send was answered SEND_OK, and timed: 26 single or batch puts of SEND_MESSAGE_V2
    // or SEND_MESSAGE (the client's choice), and one batch.
    let timed = |code: &str| {
        let labels = [("request_code", code), ("response_code", "success"), ("result", "success")];
        sample(&scrape, "rocketmq_rpc_latency_milliseconds_count", &labels).unwrap_or(0.0)
    };
    assert_eq!(timed("send_message_v2") + timed("send_message"), 26.0, "{scrape}");
    assert_eq!(timed("send_batch_message"), 1.0, "{scrape}");

    let group = "metrics-consumer";
    let consumer = standalone::pull_consumer(&apogee, group, topic).await;
    let total = sent_normal as usize + 1;
    let mut received = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while received < total && Instant::now() < deadline {
        received += consumer.poll(Duration::from_millis(500)).await.len();
    }
    assert_eq!(received, total);
    let (_, scrape) = standalone::http_get(&metrics, "/metrics");
    let out = [("topic", topic), ("consumer_group", group), ("is_system", "false")];
    assert_eq!(sample(&scrape, "rocketmq_messages_out_total", &out), Some(total as f64), "{scrape}");
    let consumers = [("consumer_group", group), ("consume_mode", "pull"), ("language", "rust")];
    assert_eq!(sample(&scrape, "rocketmq_consumer_connections", &consumers), Some(1.0), "{scrape}");
    let lag =
        sample(&scrape, "rocketmq_consumer_lag_messages", &[("consumer_group", group), ("topic", topic)])
            .expect("a lag gauge for the online group");
    assert!((0.0..=total as f64).contains(&lag), "lag {lag}");
    assert_dashboard_reads_only_exported_metrics(&scrape);
    consumer.shutdown().await;
    producer.shutdown().await;
}

/// Every metric the Grafana dashboard in docs/ queries is one this scrape describes, so the
/// dashboard cannot drift from the names exported.
fn assert_dashboard_reads_only_exported_metrics(scrape: &str) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/grafana/apogee-dashboard.json");
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let described: Vec<&str> =
        scrape.lines().filter_map(|line| line.strip_prefix("# TYPE ")?.split(' ').next()).collect();
    let exported = |name: &str| {
        let family = ["_total", "_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        described.contains(&family) || described.contains(&name)
    };
    let mut queried = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("a query");
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if word.starts_with("rocketmq_") || word.starts_with("process_") {
                    assert!(exported(word), "the dashboard queries {word}, which is not exported");
                    queried += 1;
                }
            }
        }
    }
    assert!(queried >= 12, "the dashboard queries {queried} metrics");
}

#[test]
fn the_name_server_exports_its_route_table_and_process() {
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("namesrv.conf");
    std::fs::write(&config, METRICS_ON).unwrap();
    let binary = env!("CARGO_BIN_EXE_apogee");
    let namesrv =
        ApogeeProcess::start(binary, &["namesrv", "--listen", "127.0.0.1:0", "-c", config.to_str().unwrap()]);
    let metrics = namesrv.metrics_addr().expect("metrics exported").to_owned();
    let broker = ApogeeProcess::start(
        binary,
        &["broker", "-n", namesrv.namesrv_addr(), "--listen-port", "0", "--grpc-port", "0"],
    );
    let deadline = Instant::now() + SCRAPE_LIMIT;
    let brokers = loop {
        let (_, scrape) = standalone::http_get(&metrics, "/metrics");
        let brokers =
            sample(&scrape, "rocketmq_namesrv_brokers", &[("node_type", "namesrv"), ("dc", "test-dc")]);
        if brokers == Some(1.0) || Instant::now() > deadline {
            assert!(sample(&scrape, "process_open_fds", &[]).unwrap() > 0.0, "{scrape}");
            break brokers;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(brokers, Some(1.0), "the broker at {} registered", broker.broker_addr());
}

#[test]
fn metrics_are_off_by_default() {
    let apogee = standalone::start();
    assert_eq!(apogee.metrics_addr(), None);
}
