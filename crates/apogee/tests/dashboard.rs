//! The web dashboard in a real browser: Debian's headless Chromium, driven over the DevTools
//! protocol, clicks through every page of a running `apogee standalone` that holds a topic
//! with messages, a group that consumed some of them, a connected producer and a dead-letter
//! message; it checks what a user would read on each page, resends the dead message, and fails
//! on any console error or uncaught exception. Each page is saved as a PNG: in a temporary
//! directory, or in `APOGEE_SCREENSHOT_DIR` (`APOGEE_SCREENSHOT_DIR=docs/dashboard` renews the
//! committed ones).
//!
//! Chromium must be installed (`.ci/run` installs Debian's `chromium`); `APOGEE_CHROMIUM`
//! names another binary.

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apogee_client::{Admin, ConsumeResult, Message, MessageQueue, Producer, PushConsumer};
use apogee_common::TopicConfig;
use apogee_remoting::body::enums::ConsumeFromWhere;
use apogee_testkit::{eventually, standalone_args, ApogeeProcess};
use headless_chrome::browser::tab::Tab;
use headless_chrome::protocol::cdp::types::Event;
use headless_chrome::protocol::cdp::{Log, Page, Runtime};
use headless_chrome::{Browser, LaunchOptions};

mod standalone;

/// The topic whose offsets, lag and messages the pages show.
const TOPIC: &str = "DashOrders";
/// The group that consumed part of [`TOPIC`].
const GROUP: &str = "DashOrderService";
/// The producer group kept connected while the pages are read.
const PRODUCER_GROUP: &str = "DashOrderProducer";
/// The topic whose one message ends in a dead-letter topic.
const DLQ_SOURCE_TOPIC: &str = "DashPayments";
/// The group that fails that message at once (no retries).
const DLQ_GROUP: &str = "DashPaymentService";
/// The body of the dead message.
const DEAD_BODY: &str = "payment 1 could not be charged";

/// Longest wait for the cluster or a page to show what is expected.
const WAIT_LIMIT: Duration = Duration::from_secs(30);
/// Pause between two looks.
const POLL_PAUSE: Duration = Duration::from_millis(100);
/// The browser window, which is also the size of every screenshot.
const WINDOW: (u32, u32) = (1360, 900);

/// When the first page was shown, for the timings printed.
static SINCE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// Where Debian installs Chromium.
const DEBIAN_CHROMIUM: &str = "/usr/bin/chromium";

/// Messages of [`TOPIC`] in each queue: the first pass (consumed) and the second (lagging).
const FIRST_PASS: [usize; 2] = [3, 3];
const SECOND_PASS: [usize; 2] = [2, 1];

fn chromium() -> PathBuf {
    let path =
        std::env::var_os("APOGEE_CHROMIUM").map_or_else(|| PathBuf::from(DEBIAN_CHROMIUM), PathBuf::from);
    assert!(
        path.exists(),
        "{} is missing: install Debian's chromium (`apt-get install -y chromium`, as .ci/run does) \
         or set APOGEE_CHROMIUM",
        path.display()
    );
    path
}

/// Polls `check` until it returns `Some`, failing with `what` after [`WAIT_LIMIT`].
fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT_LIMIT;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(POLL_PAUSE);
    }
}

/// What the seeding left running: the producer stays connected for the producers page.
struct Seeded {
    producer: Producer,
}

fn message(topic: &str, index: usize, text: &str) -> Message {
    Message::new(topic, text.as_bytes().to_vec()).with_tags("created").with_keys([format!("order-{index}")])
}

/// The topic (two queues) with messages, [`GROUP`] having consumed the first pass of them, and
/// [`DLQ_GROUP`]'s dead letter.
async fn seed(namesrv: &str, broker_name: &str) -> Seeded {
    let admin = Admin::builder().namesrv(namesrv.to_owned()).start().await.expect("admin starts");
    for topic in [TOPIC, DLQ_SOURCE_TOPIC] {
        admin
            .create_topic("DefaultCluster", &TopicConfig::with_queues(topic, 2, 2, 6))
            .await
            .expect("topic made");
        eventually("the route of the new topic", WAIT_LIMIT, || async {
            admin.topic_route(topic).await.ok()
        })
        .await;
    }
    let producer = Producer::builder()
        .group(PRODUCER_GROUP)
        .namesrv(namesrv.to_owned())
        .start()
        .await
        .expect("producer");
    let send_pass = |start: usize, counts: [usize; 2]| {
        let producer = &producer;
        async move {
            let mut index = start;
            for (queue_id, count) in counts.into_iter().enumerate() {
                for _ in 0..count {
                    let queue = MessageQueue::new(TOPIC, broker_name, i32::try_from(queue_id).unwrap());
                    let body = format!("order {index} body");
                    producer.send_to_queue(message(TOPIC, index, &body), queue).await.expect("sent");
                    index += 1;
                }
            }
            index
        }
    };

    let consumed = Arc::new(Mutex::new(BTreeSet::new()));
    let seen = Arc::clone(&consumed);
    let consumer = PushConsumer::builder()
        .group(GROUP)
        .namesrv(namesrv.to_owned())
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .subscribe(TOPIC, "*")
        .start(move |messages| {
            let seen = Arc::clone(&seen);
            async move {
                let mut seen = seen.lock().unwrap();
                for message in messages {
                    seen.insert(String::from_utf8_lossy(&message.message.body).into_owned());
                }
                ConsumeResult::Success
            }
        })
        .await
        .expect("consumer starts");
    let next = send_pass(0, FIRST_PASS).await;
    let first_total: usize = FIRST_PASS.iter().sum();
    eventually("the first pass consumed", WAIT_LIMIT, || async {
        (consumed.lock().unwrap().len() == first_total).then_some(())
    })
    .await;
    // Shutting down commits the offsets; the group then lags by exactly the second pass.
    consumer.shutdown().await;
    eventually("the group's committed offsets", WAIT_LIMIT, || async {
        let progress = admin.consumer_progress(GROUP, Some(TOPIC)).await.ok()?;
        (progress.queues.iter().map(|queue| queue.consumer_offset).sum::<i64>() == first_total as i64)
            .then_some(())
    })
    .await;
    send_pass(next, SECOND_PASS).await;

    let dead_letters = PushConsumer::builder()
        .group(DLQ_GROUP)
        .namesrv(namesrv.to_owned())
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .max_reconsume_times(0)
        .subscribe(DLQ_SOURCE_TOPIC, "*")
        .start(|_messages| async { ConsumeResult::ReconsumeLater })
        .await
        .expect("failing consumer starts");
    let payment = Message::new(DLQ_SOURCE_TOPIC, DEAD_BODY.as_bytes().to_vec()).with_keys(["payment-1"]);
    producer.send(payment).await.expect("payment sent");
    let dlq = format!("%DLQ%{DLQ_GROUP}");
    eventually("the payment in the dead-letter topic", WAIT_LIMIT, || async {
        let stats = admin.topic_stats(&dlq).await.ok()?;
        (stats.offset_table.values().map(|offsets| offsets.max_offset).sum::<i64>() == 1).then_some(())
    })
    .await;
    dead_letters.shutdown().await;
    Seeded { producer }
}

/// Console errors, failed loads and uncaught exceptions the page produced.
type Problems = Arc<Mutex<Vec<String>>>;

fn watch_problems(tab: &Tab) -> Problems {
    let problems: Problems = Arc::default();
    let sink = Arc::clone(&problems);
    tab.enable_log().expect("Log domain").enable_runtime().expect("Runtime domain");
    tab.add_event_listener(Arc::new(move |event: &Event| {
        let problem = match event {
            Event::LogEntryAdded(entry) if entry.params.entry.level == Log::LogEntryLevel::Error => {
                Some(format!("log error: {}", entry.params.entry.text))
            }
            Event::RuntimeConsoleAPICalled(call)
                if matches!(
                    call.params.Type,
                    Runtime::ConsoleAPICalledEventTypeOption::Error
                        | Runtime::ConsoleAPICalledEventTypeOption::Assert
                ) =>
            {
                Some(format!("console.error: {:?}", call.params.args))
            }
            Event::RuntimeExceptionThrown(thrown) => Some(format!(
                "uncaught exception: {} {:?}",
                thrown.params.exception_details.text, thrown.params.exception_details.exception
            )),
            _ => None,
        };
        if let Some(problem) = problem {
            sink.lock().unwrap().push(problem);
        }
    }))
    .expect("listener added");
    problems
}

/// The text of `selector` once it contains every one of `needles`; the failure shows what
/// the page said instead.
fn text_with(tab: &Tab, selector: &str, needles: &[&str]) -> String {
    let deadline = Instant::now() + WAIT_LIMIT;
    loop {
        let text =
            tab.find_element(selector).and_then(|element| element.get_inner_text()).unwrap_or_default();
        if needles.iter().all(|needle| text.contains(needle)) {
            return text;
        }
        if Instant::now() >= deadline {
            let page =
                tab.find_element("main").and_then(|element| element.get_inner_text()).unwrap_or_default();
            panic!("timed out waiting for {selector} to show {needles:?}; the page shows:\n{page}");
        }
        std::thread::sleep(POLL_PAUSE);
    }
}

/// The cells of the body rows of table `selector` (tab-separated, as `innerText` gives them),
/// once its rows show `needle`.
fn rows_of(tab: &Tab, selector: &str, needle: &str) -> Vec<Vec<String>> {
    let text = text_with(tab, &format!("{selector} tbody"), &[needle]);
    text.lines().map(|line| line.split('\t').map(|cell| cell.trim().to_owned()).collect()).collect()
}

fn click(tab: &Tab, selector: &str) {
    let mut failures = 0;
    wait_for(&format!("{selector} to be clickable"), || {
        let clicked = tab.find_element(selector).and_then(|element| element.click().map(drop));
        if let Err(error) = &clicked {
            failures += 1;
            if failures == 1 {
                eprintln!("clicking {selector}: {error:#}");
            }
        }
        clicked.ok()
    });
}

fn click_link(tab: &Tab, text: &str) {
    let xpath = format!("//main//a[normalize-space(text())='{text}']");
    wait_for(&format!("a link {text:?}"), || tab.find_element_by_xpath(&xpath).ok()?.click().ok().map(drop));
}

fn fill(tab: &Tab, selector: &str, value: &str) {
    let element = wait_for(&format!("{selector} to be shown"), || tab.find_element(selector).ok());
    // Clear what the form kept from an earlier search, then enter the text as typing or a
    // paste does (one input event; key by key costs two round trips a character).
    tab.evaluate(&format!("document.querySelector({selector:?}).value = ''"), false).expect("input cleared");
    element.click().expect("input focused");
    tab.send_character(value).expect("text entered");
}

fn screenshot(tab: &Tab, dir: &Path, name: &str) {
    // Let the last layout settle (fonts, the table just drawn).
    std::thread::sleep(Duration::from_millis(300));
    let png = tab
        .capture_screenshot(Page::CaptureScreenshotFormatOption::Png, None, None, true)
        .expect("screenshot taken");
    let path = dir.join(format!("{name}.png"));
    println!("{name} shown at {:?}", SINCE.get_or_init(Instant::now).elapsed());
    std::fs::write(&path, png).unwrap_or_else(|error| panic!("writing {}: {error}", path.display()));
}

fn screenshot_dir() -> PathBuf {
    let dir = match std::env::var_os("APOGEE_SCREENSHOT_DIR") {
        // Relative to the repository root, where a developer runs cargo from.
        Some(dir) => Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(dir),
        None => std::env::temp_dir().join(format!("apogee-dashboard-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).unwrap_or_else(|error| panic!("creating {}: {error}", dir.display()));
    dir
}

fn launch(user_data_dir: &Path) -> Browser {
    // Without the background-networking flags Chromium reaches for Google's services, which a
    // closed network refuses (and counts against the page).
    let flags = [
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-features=Translate,MediaRouter,OptimizationHints",
        "--lang=en-US",
    ];
    let options = LaunchOptions::default_builder()
        .path(Some(chromium()))
        .headless(true)
        .sandbox(false)
        .window_size(Some(WINDOW))
        .user_data_dir(Some(user_data_dir.to_path_buf()))
        .args(flags.iter().map(OsStr::new).collect())
        .idle_browser_timeout(Duration::from_secs(120))
        // Chromium's scratch files go with the profile directory.
        .process_envs(Some(HashMap::from([("TMPDIR".to_owned(), user_data_dir.display().to_string())])))
        .build()
        .expect("launch options");
    Browser::new(options).expect("chromium starts")
}

#[test]
fn every_page_shows_the_cluster_and_a_dead_letter_is_resent() {
    let apogee = ApogeeProcess::standalone(env!("CARGO_BIN_EXE_apogee"));
    let dashboard = format!("http://{}", apogee.dashboard_addr().expect("the standalone serves a dashboard"));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let broker_name = runtime.block_on(async {
        let admin = Admin::builder().namesrv(apogee.namesrv_addr().to_owned()).start().await.unwrap();
        let info = admin.cluster_info().await.expect("cluster info");
        info.broker_addr_table.keys().next().expect("one broker").clone()
    });
    let started = Instant::now();
    let seeded = runtime.block_on(seed(apogee.namesrv_addr(), &broker_name));
    println!("seeded in {:?}", started.elapsed());
    let producer_client = seeded.producer.instance().client_id().to_owned();

    let profile = tempfile::tempdir().expect("profile dir");
    let browser = launch(profile.path());
    let tab = browser.new_tab().expect("a tab");
    tab.set_default_timeout(WAIT_LIMIT);
    let problems = watch_problems(&tab);
    let shots = screenshot_dir();

    // The watch sees what it must: a console error and an uncaught exception, planted on the blank page
    // before the dashboard is opened.
    tab.evaluate("console.error('probe'); setTimeout(() => { throw new Error('probe'); }, 0); 1", false)
        .expect("probes planted");
    wait_for("the planted console error and exception to be seen", || {
        let seen = problems.lock().unwrap();
        let console =
            seen.iter().any(|problem| problem.starts_with("console.error") && problem.contains("probe"));
        let thrown =
            seen.iter().any(|problem| problem.starts_with("uncaught exception") && problem.contains("probe"));
        (console && thrown).then_some(())
    });
    problems.lock().unwrap().clear();

    // Cluster: the broker with its address, version and runtime figures.
    tab.navigate_to(&format!("{dashboard}/")).unwrap().wait_until_navigated().unwrap();
    let brokers = rows_of(&tab, "#brokers", "DefaultCluster");
    assert_eq!(brokers.len(), 1, "{brokers:?}");
    assert_eq!(&brokers[0][..4], ["DefaultCluster", broker_name.as_str(), "0", apogee.broker_addr()]);
    assert_eq!(brokers[0][12], "true", "ACTIVATED: {brokers:?}");
    let (written, unit) = brokers[0][9].split_once(' ').expect("the commit log's size and unit");
    assert!(written.parse::<f64>().expect("a number") > 0.0 && unit.ends_with('B'), "{brokers:?}");
    click(&tab, "details.runtime summary");
    text_with(&tab, "details.runtime table", &["brokerVersionDesc", "commitLogDiskRatio"]);
    screenshot(&tab, &shots, "cluster");

    // Topics: the list, then the topic with its queues and offsets and its consumer.
    click(&tab, "nav a[data-page=topics]");
    text_with(&tab, "#topics", &[TOPIC, DLQ_SOURCE_TOPIC]);
    screenshot(&tab, &shots, "topics");
    click_link(&tab, TOPIC);
    let queues = rows_of(&tab, "#queues", &broker_name);
    let stored: Vec<&[String]> = queues.iter().map(|row| &row[1..5]).collect();
    assert_eq!(stored, [["0", "0", "5", "5"], ["1", "0", "4", "4"]], "queue, min, max, messages: {queues:?}");
    text_with(&tab, "#topic-groups", &[GROUP]);
    screenshot(&tab, &shots, "topic");

    // Consumer groups: the group's lag, then per queue.
    click(&tab, "nav a[data-page=groups]");
    let groups = rows_of(&tab, "#groups", GROUP);
    let group_row = groups.iter().find(|row| row[0] == GROUP).expect("the group is listed");
    assert_eq!(group_row[6], "3", "total lag: {groups:?}");
    screenshot(&tab, &shots, "groups");
    click_link(&tab, GROUP);
    let lag = rows_of(&tab, "#lag", TOPIC);
    let per_queue: Vec<&[String]> = lag.iter().filter(|row| row[0] == TOPIC).map(|row| &row[2..6]).collect();
    assert_eq!(
        per_queue,
        [["0", "5", "3", "2"], ["1", "4", "3", "1"]],
        "queue, broker offset, consumer offset, lag: {lag:?}"
    );
    screenshot(&tab, &shots, "group");

    // Producers: the connected producer, found by group and topic.
    click(&tab, "nav a[data-page=producers]");
    fill(&tab, "#producer-form-group", PRODUCER_GROUP);
    fill(&tab, "#producer-form-topic", TOPIC);
    click(&tab, "#producer-form button");
    let producers = rows_of(&tab, "#producers", &producer_client);
    assert_eq!(producers.len(), 1, "{producers:?}");
    screenshot(&tab, &shots, "producers");

    // Messages: by key, then the message itself with its body and who consumed it.
    click(&tab, "nav a[data-page=messages]");
    fill(&tab, "#message-form-topic", TOPIC);
    fill(&tab, "#message-form-key", "order-1");
    click(&tab, "#message-form button");
    let found = rows_of(&tab, "#messages", "order 1 body");
    assert_eq!(found.len(), 1, "one message has key order-1: {found:?}");
    assert_eq!(found[0][6], "order 1 body", "{found:?}");
    let id = found[0][0].clone();
    click_link(&tab, &id);
    let body = text_with(&tab, "#message-body", &["order 1 body"]);
    assert_eq!(body.trim(), "order 1 body");
    let tracks = rows_of(&tab, "#tracks", GROUP);
    assert_eq!(tracks, [[GROUP, "CONSUMED"]], "{tracks:?}");
    screenshot(&tab, &shots, "message");
    // By time: every message of the last hour, the lagging ones too.
    click(&tab, "#tab-time");
    fill(&tab, "#message-form-topic", TOPIC);
    click(&tab, "#message-form button");
    let recent = rows_of(&tab, "#messages", "order 8 body");
    let bodies: BTreeSet<&str> = recent.iter().map(|row| row[6].as_str()).collect();
    let expected: BTreeSet<String> = (0..9).map(|index| format!("order {index} body")).collect();
    assert_eq!(bodies, expected.iter().map(String::as_str).collect(), "{recent:?}");
    screenshot(&tab, &shots, "messages");

    // Dead letters: the group's dead message, resent to its topic.
    click(&tab, "nav a[data-page=dlq]");
    click_link(&tab, DLQ_GROUP);
    let dead = rows_of(&tab, "#dlq-messages", DEAD_BODY);
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0][6], DEAD_BODY);
    assert_eq!(dead[0][7], DLQ_SOURCE_TOPIC, "the original topic: {dead:?}");
    click(&tab, "#dlq-messages button.resend");
    let resent = text_with(&tab, "#resend-status .ok", &[&format!("to {DLQ_SOURCE_TOPIC} as")]);
    screenshot(&tab, &shots, "dlq");
    // The copy is in the original topic: two messages now carry the payment's key.
    let copies = runtime.block_on(async {
        let admin = Admin::builder().namesrv(apogee.namesrv_addr().to_owned()).start().await.unwrap();
        eventually("the resent copy", WAIT_LIMIT, || async {
            let found =
                admin.query_messages_by_key(DLQ_SOURCE_TOPIC, "payment-1", 32, 0, i64::MAX).await.ok()?;
            (found.messages.len() == 2).then_some(found.messages)
        })
        .await
    });
    assert!(copies.iter().all(|copy| copy.message.body.as_ref() == DEAD_BODY.as_bytes()), "{resent}");
    tab.navigate_to(&format!("{dashboard}/#/topics?topic={DLQ_SOURCE_TOPIC}")).unwrap();
    let payments = rows_of(&tab, "#queues", &broker_name);
    let total: i64 = payments.iter().map(|row| row[4].parse::<i64>().unwrap()).sum();
    assert_eq!(total, 2, "the payment and its resent copy: {payments:?}");

    // A failure is shown on the page, naming the request, and is no console error.
    tab.navigate_to(&format!("{dashboard}/#/topics?topic=NoSuchTopic")).unwrap();
    let failure = text_with(&tab, "main .error", &["GET_ROUTEINFO_BY_TOPIC (105) of NoSuchTopic"]);
    assert!(failure.starts_with("Failed:"), "{failure}");
    tab.navigate_to(&format!("{dashboard}/#/messages?mode=key&topic=bad%20topic&key=k")).unwrap();
    text_with(&tab, "main .error", &["illegal characters"]);

    let problems = problems.lock().unwrap().clone();
    assert!(problems.is_empty(), "the pages logged errors: {problems:#?}");
    println!("pages checked in {:?}; screenshots in {}", started.elapsed(), shots.display());
    runtime.block_on(seeded.producer.shutdown());
}

#[test]
fn the_dashboard_command_serves_a_cluster_on_its_own() {
    let apogee = ApogeeProcess::start(env!("CARGO_BIN_EXE_apogee"), &standalone_args(&["--no-dashboard"]));
    assert_eq!(apogee.dashboard_addr(), None, "--no-dashboard serves none");
    let dashboard = ApogeeProcess::start(
        env!("CARGO_BIN_EXE_apogee"),
        &["dashboard", "-n", apogee.namesrv_addr(), "--listen", "127.0.0.1:0"],
    );
    let addr = dashboard.dashboard_addr().expect("the dashboard's address");

    let (status, body) = standalone::http_get(addr, "/api/cluster");
    assert!(status.contains("200"), "{status}");
    let answer: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(answer["status"], 0, "{answer}");
    let brokers = answer["data"]["brokers"].as_array().expect("brokers");
    assert_eq!(brokers.len(), 1, "{answer}");
    assert_eq!(brokers[0]["addr"], apogee.broker_addr(), "{answer}");
    assert_eq!(brokers[0]["runtime"]["brokerActive"], "true", "{answer}");

    // A refusal is an answer in the envelope, naming the request and the broker's answer.
    let (status, body) = standalone::http_get(addr, "/api/topic?topic=NoSuchTopic");
    assert!(status.contains("200"), "{status}");
    let answer: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(answer["status"], -1, "{answer}");
    let message = answer["errMsg"].as_str().expect("errMsg");
    assert!(message.starts_with("topic status: GET_ROUTEINFO_BY_TOPIC (105) of NoSuchTopic"), "{message}");
    let (_, body) =
        standalone::http_get(addr, "/api/messages/by-time?topic=TBW102&begin=0&end=9999999999999");
    assert!(body.contains("wider than 31 days"), "{body}");

    let (status, page) = standalone::http_get(addr, "/");
    assert!(status.contains("200") && page.contains("<script src=\"/assets/app.js\">"), "{status}");
    let (status, script) = standalone::http_get(addr, "/assets/app.js");
    assert!(status.contains("200") && script.contains("function clusterPage"), "{status}");
    let (status, _) = standalone::http_get(addr, "/assets/missing.js");
    assert!(status.contains("404"), "{status}");
}
