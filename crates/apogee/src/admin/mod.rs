//! `apogee admin <command>`: mqadmin's commands, names, options and output, over
//! [`apogee_client::Admin`], so an operator of Apache RocketMQ finds what they know. Every
//! request is one of RocketMQ's own request codes, so the commands work against Apache
//! RocketMQ as well. One module per area: [`topics`], [`groups`], [`offsets`],
//! [`messages`], [`cluster`]; [`table`] prints mqadmin's column layouts; [`inspect`] has what
//! the commands compute as data, which the web dashboard reads through too.
//!
//! Failures name what failed and where (request, address, response code and remark) and end
//! the process with a non-zero status.

mod cluster;
mod groups;
pub(crate) mod inspect;
mod messages;
mod offsets;
pub(crate) mod table;
mod topics;

use std::fmt::Display;
use std::future::Future;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use apogee_client::{Admin, ClientError};
use apogee_remoting::body::route::{ClusterInfo, MASTER_ID};
use apogee_remoting::response_code;
use clap::{Args, Subcommand};

/// The environment variable mqadmin reads the NameServer list from when `-n` is absent.
const NAMESRV_ADDR_ENV: &str = "NAMESRV_ADDR";

/// Timeout of each request to a broker or NameServer (mqadmin's tools use 3 s for most).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The log level of admin commands unless `APOGEE_LOG` says otherwise: the client's start and
/// stop lines would drown the tables.
pub const DEFAULT_LOG_LEVEL: &str = "warn";

/// `apogee admin`: mqadmin's commands.
#[derive(Debug, Args)]
#[command(
    about = "mqadmin's commands against Apogee or Apache RocketMQ",
    long_about = "mqadmin's commands, options and output against Apogee or Apache RocketMQ. \
                  Without a command, lists the commands."
)]
pub struct AdminArgs {
    /// NameServer addresses, `host:port;host:port` [env NAMESRV_ADDR].
    #[arg(short = 'n', long = "namesrvAddr", global = true)]
    namesrv_addr: Option<String>,
    #[command(subcommand)]
    command: Option<AdminCommand>,
}

/// Every command, by mqadmin's exact name.
#[derive(Debug, Subcommand)]
#[command(rename_all = "camelCase")]
enum AdminCommand {
    /// Update or create topic.
    UpdateTopic(topics::UpdateTopic),
    /// Delete topic from broker and NameServer.
    DeleteTopic(topics::DeleteTopic),
    /// Fetch all topic list from name server.
    TopicList(topics::TopicList),
    /// Examine topic route info.
    TopicRoute(topics::TopicRoute),
    /// Examine topic status info.
    TopicStatus(topics::TopicStatus),
    /// Get cluster info for topic.
    TopicClusterList(topics::TopicClusterList),
    /// Update topic perm.
    UpdateTopicPerm(topics::UpdateTopicPerm),
    /// Update or create subscription group.
    UpdateSubGroup(groups::UpdateSubGroup),
    /// Delete subscription group from broker.
    DeleteSubGroup(groups::DeleteSubGroup),
    /// Query consumer's progress, speed.
    ConsumerProgress(groups::ConsumerProgress),
    /// Query consumer's socket connection, client version and subscription.
    ConsumerConnection(groups::ConsumerConnection),
    /// Query producer's socket connection and client version.
    ProducerConnection(groups::ProducerConnection),
    /// Reset consumer offset by timestamp (without client restart).
    ResetOffsetByTime(offsets::ResetOffsetByTime),
    /// Skip all messages that are accumulated (not consumed) currently.
    SkipAccumulatedMessage(offsets::SkipAccumulatedMessage),
    /// Query Message by Id.
    QueryMsgById(messages::QueryMsgById),
    /// Query Message by Key.
    QueryMsgByKey(messages::QueryMsgByKey),
    /// Query Message by Unique key.
    QueryMsgByUniqueKey(messages::QueryMsgByUniqueKey),
    /// Query Message by offset.
    QueryMsgByOffset(messages::QueryMsgByOffset),
    /// Print Message Detail.
    PrintMsg(messages::PrintMsg),
    /// Send a message.
    SendMessage(messages::SendMessage),
    /// Consume message.
    ConsumeMessage(messages::ConsumeMessage),
    /// List cluster infos.
    ClusterList(cluster::ClusterList),
    /// Fetch broker runtime status data.
    BrokerStatus(cluster::BrokerStatus),
    /// Get broker config by cluster or special broker.
    GetBrokerConfig(cluster::GetBrokerConfig),
    /// Update broker's config.
    UpdateBrokerConfig(cluster::UpdateBrokerConfig),
    /// Wipe write perm of broker in all name server you defined in the -n param.
    WipeWritePerm(cluster::WritePerm),
    /// Add write perm of broker in all name server you defined in the -n param.
    AddWritePerm(cluster::WritePerm),
    /// Get configs of name server.
    GetNamesrvConfig(cluster::GetNamesrvConfig),
    /// Update configs of name server.
    UpdateNamesrvConfig(cluster::UpdateNamesrvConfig),
    /// Topic and Consumer tps stats.
    StatsAll(cluster::StatsAll),
}

impl AdminArgs {
    /// Runs the chosen command, or lists the commands when none is given.
    pub async fn run(self) -> Result<()> {
        // Output piped into `head` and the like ends the process quietly when the reader
        // goes, as command-line tools do, instead of panicking in `println!`.
        // SAFETY: restoring the default disposition of SIGPIPE has no memory effects.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
        let Some(command) = self.command else {
            print_command_list();
            return Ok(());
        };
        let namesrv = self
            .namesrv_addr
            .or_else(|| std::env::var(NAMESRV_ADDR_ENV).ok())
            .map(|list| list.trim().to_owned())
            .filter(|list| !list.is_empty())
            .ok_or_else(|| {
                anyhow!("no NameServer address: pass -n host:port[;host:port] or set {NAMESRV_ADDR_ENV}")
            })?;
        let admin = start_admin(&namesrv, REQUEST_TIMEOUT).await?;
        let ctx = Ctx { admin, namesrv };
        match command {
            AdminCommand::UpdateTopic(args) => topics::update_topic(&ctx, args).await,
            AdminCommand::DeleteTopic(args) => topics::delete_topic(&ctx, args).await,
            AdminCommand::TopicList(args) => topics::topic_list(&ctx, args).await,
            AdminCommand::TopicRoute(args) => topics::topic_route(&ctx, args).await,
            AdminCommand::TopicStatus(args) => topics::topic_status(&ctx, args).await,
            AdminCommand::TopicClusterList(args) => topics::topic_cluster_list(&ctx, args).await,
            AdminCommand::UpdateTopicPerm(args) => topics::update_topic_perm(&ctx, args).await,
            AdminCommand::UpdateSubGroup(args) => groups::update_sub_group(&ctx, args).await,
            AdminCommand::DeleteSubGroup(args) => groups::delete_sub_group(&ctx, args).await,
            AdminCommand::ConsumerProgress(args) => groups::consumer_progress(&ctx, args).await,
            AdminCommand::ConsumerConnection(args) => groups::consumer_connection(&ctx, args).await,
            AdminCommand::ProducerConnection(args) => groups::producer_connection(&ctx, args).await,
            AdminCommand::ResetOffsetByTime(args) => offsets::reset_offset_by_time(&ctx, args).await,
            AdminCommand::SkipAccumulatedMessage(args) => offsets::skip_accumulated(&ctx, args).await,
            AdminCommand::QueryMsgById(args) => messages::query_by_id(&ctx, args).await,
            AdminCommand::QueryMsgByKey(args) => messages::query_by_key(&ctx, args).await,
            AdminCommand::QueryMsgByUniqueKey(args) => messages::query_by_unique_key(&ctx, args).await,
            AdminCommand::QueryMsgByOffset(args) => messages::query_by_offset(&ctx, args).await,
            AdminCommand::PrintMsg(args) => messages::print_msg(&ctx, args).await,
            AdminCommand::SendMessage(args) => messages::send_message(&ctx, args).await,
            AdminCommand::ConsumeMessage(args) => messages::consume_message(&ctx, args).await,
            AdminCommand::ClusterList(args) => cluster::cluster_list(&ctx, args).await,
            AdminCommand::BrokerStatus(args) => cluster::broker_status(&ctx, args).await,
            AdminCommand::GetBrokerConfig(args) => cluster::get_broker_config(&ctx, args).await,
            AdminCommand::UpdateBrokerConfig(args) => cluster::update_broker_config(&ctx, args).await,
            AdminCommand::WipeWritePerm(args) => cluster::write_perm(&ctx, args, false).await,
            AdminCommand::AddWritePerm(args) => cluster::write_perm(&ctx, args, true).await,
            AdminCommand::GetNamesrvConfig(_) => cluster::get_namesrv_config(&ctx).await,
            AdminCommand::UpdateNamesrvConfig(args) => cluster::update_namesrv_config(&ctx, args).await,
            AdminCommand::StatsAll(args) => cluster::stats_all(&ctx, args).await,
        }
    }
}

/// mqadmin's listing when no command is given.
fn print_command_list() {
    use clap::CommandFactory as _;
    #[derive(Debug, clap::Parser)]
    struct Listing {
        #[command(subcommand)]
        command: AdminCommand,
    }
    println!("The most commonly used apogee admin commands are:");
    for command in Listing::command().get_subcommands() {
        let about = command.get_about().map(ToString::to_string).unwrap_or_default();
        println!("   {:<35} {about}", command.get_name());
    }
    println!();
    println!("See 'apogee admin help <command>' for more information on a specific command.");
}

/// What every command works with: the admin client and the NameServer list it was given.
#[derive(Debug)]
struct Ctx {
    admin: Admin,
    namesrv: String,
}

impl Ctx {
    /// The cluster table, or an error naming GET_BROKER_CLUSTER_INFO.
    async fn cluster_info(&self) -> Result<ClusterInfo> {
        inspect::cluster_info(&self.admin, &self.namesrv).await
    }

    /// `(broker name, address)` of the members of `cluster`: the masters, or every member with
    /// `with_slaves`; an error when the cluster is unknown.
    async fn cluster_members(&self, cluster: &str, with_slaves: bool) -> Result<Vec<(String, String)>> {
        let info = self.cluster_info().await?;
        let Some(names) = info.cluster_addr_table.get(cluster) else {
            bail!("cluster {cluster:?} is unknown to NameServer {}", self.namesrv);
        };
        let mut members = Vec::new();
        for name in names {
            let Some(broker) = info.broker_addr_table.get(name) else { continue };
            for (id, addr) in &broker.broker_addrs {
                if *id == MASTER_ID || with_slaves {
                    members.push((name.clone(), addr.clone()));
                }
            }
        }
        Ok(members)
    }

    /// The broker addresses a `-b`/`-c` pair names: the one address, or the cluster's masters
    /// (and slaves with `with_slaves`). Exactly one of the two is expected (clap checks).
    async fn targets(
        &self,
        broker_addr: Option<&str>,
        cluster: Option<&str>,
        with_slaves: bool,
    ) -> Result<Vec<String>> {
        match (broker_addr, cluster) {
            (Some(addr), _) => Ok(vec![addr.to_owned()]),
            (None, Some(cluster)) => {
                let members = self.cluster_members(cluster, with_slaves).await?;
                if members.is_empty() {
                    bail!("cluster {cluster:?} has no broker");
                }
                Ok(members.into_iter().map(|(_, addr)| addr).collect())
            }
            (None, None) => bail!("one of -b (broker address) or -c (cluster name) is needed"),
        }
    }
}

/// The admin client of `namesrv` (a `;`-separated list), each request bounded by
/// `request_timeout`; its instance name is unique to this start.
pub(crate) async fn start_admin(namesrv: &str, request_timeout: Duration) -> Result<Admin> {
    Admin::builder()
        .namesrv(namesrv.to_owned())
        .instance_name(format!("{}-{}", std::process::id(), apogee_common::time::now_ms()))
        .api_timeout(request_timeout)
        .start()
        .await
        .map_err(|error| anyhow!("starting the admin client for NameServer {namesrv}: {}", describe(&error)))
}

/// Awaits an SDK call, turning its failure into an error that says `what` was asked.
pub(crate) async fn call<T>(
    future: impl Future<Output = Result<T, ClientError>>,
    what: impl Display,
) -> Result<T> {
    future.await.map_err(|error| anyhow!("{what} failed: {}", describe(&error)))
}

/// A client error with the response code's Java name, when it is a refusal.
pub(crate) fn describe(error: &ClientError) -> String {
    match error {
        ClientError::Broker { code, remark, addr } => {
            let name = response_code::name(*code).unwrap_or("UNKNOWN");
            format!("{addr} answered {name} ({code}): {remark}")
        }
        other => other.to_string(),
    }
}

/// mqadmin's boolean options take `true`/`false` as values.
fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim() {
        t if t.eq_ignore_ascii_case("true") => Ok(true),
        t if t.eq_ignore_ascii_case("false") => Ok(false),
        other => Err(format!("{other:?} is not true or false")),
    }
}

/// Progress of a long command on standard error (the tables stay alone on standard output):
/// at most one line every half second, and the last.
#[derive(Debug)]
struct Progress {
    what: &'static str,
    total: usize,
    last_shown: Option<Instant>,
    terminal: bool,
}

impl Progress {
    /// Starts counting `total` steps of `what`.
    fn new(what: &'static str, total: usize) -> Self {
        Progress { what, total, last_shown: None, terminal: std::io::stderr().is_terminal() }
    }

    /// Step `done` of the total is finished; `item` names it.
    fn step(&mut self, done: usize, item: &str) {
        let due = self.last_shown.is_none_or(|shown| shown.elapsed() >= Duration::from_millis(500));
        if !due && done < self.total {
            return;
        }
        self.last_shown = Some(Instant::now());
        if self.terminal {
            eprint!("\r\x1b[2K{}: {done}/{} {item}", self.what, self.total);
            if done >= self.total {
                eprintln!();
            }
        } else {
            eprintln!("{}: {done}/{} {item}", self.what, self.total);
        }
    }
}
