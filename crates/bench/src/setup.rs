//! Finding the broker queues of a topic, creating the topic when it is missing.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use apogee_remoting::body::route::{ClusterInfo, TopicRouteData};
use apogee_remoting::client::{ClientConfig, RemotingClient};
use apogee_remoting::fastjson;
use apogee_remoting::header::admin::CreateTopicRequestHeader;
use apogee_remoting::header::namesrv::GetRouteInfoRequestHeader;
use apogee_remoting::router::Router;
use apogee_remoting::{request_code, response_code, RemotingCommand};

/// How long admin calls of the setup may take (finding or creating the topic, placing a group).
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for a created topic's route to reach the NameServer.
const ROUTE_WAIT: Duration = Duration::from_secs(40);

/// One writable queue: broker address and queue id.
#[derive(Debug, Clone)]
pub struct Queue {
    /// Broker address (`ip:port`).
    pub addr: String,
    /// Broker name.
    pub broker_name: String,
    /// Queue id.
    pub queue_id: i32,
}

/// A client for setup calls.
pub fn admin_client() -> RemotingClient {
    RemotingClient::new(ClientConfig::default(), Router::new())
}

/// Runs `setup` with an admin client of its own and shuts the client down after, whatever the
/// outcome: a workload that needs remoting only before its run (the gRPC ones) must not keep
/// those connections open through the measurement.
pub async fn with_admin_client<T>(setup: impl AsyncFnOnce(&RemotingClient) -> Result<T>) -> Result<T> {
    let client = admin_client();
    let outcome = setup(&client).await;
    client.shutdown().await;
    outcome
}

/// The queues of `topic`, creating it with `queues` queues on every master when missing.
pub async fn queues_of(
    client: &RemotingClient,
    namesrv: &str,
    topic: &str,
    queues: i32,
) -> Result<Vec<Queue>> {
    let route = match route_of(client, namesrv, topic).await? {
        Some(route) => route,
        None => {
            create_topic(client, namesrv, topic, queues).await?;
            let deadline = tokio::time::Instant::now() + ROUTE_WAIT;
            loop {
                if let Some(route) = route_of(client, namesrv, topic).await? {
                    break route;
                }
                if tokio::time::Instant::now() > deadline {
                    bail!("created {topic} but its route never reached the NameServer");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let mut found = Vec::new();
    for queue_data in &route.queue_datas {
        let Some(broker) =
            route.broker_datas.iter().find(|broker| broker.broker_name == queue_data.broker_name)
        else {
            continue;
        };
        let Some(addr) = broker.broker_addrs.get(&0) else { continue };
        for queue_id in 0..queue_data.write_queue_nums {
            found.push(Queue { addr: addr.clone(), broker_name: broker.broker_name.clone(), queue_id });
        }
    }
    anyhow::ensure!(!found.is_empty(), "topic {topic} has no writable queue on a master");
    Ok(found)
}

async fn route_of(client: &RemotingClient, namesrv: &str, topic: &str) -> Result<Option<TopicRouteData>> {
    let header = GetRouteInfoRequestHeader { topic: topic.to_owned(), accept_standard_json_only: Some(true) };
    let request = RemotingCommand::request(request_code::GET_ROUTEINFO_BY_TOPIC).with_header(&header);
    let response = client.invoke(namesrv, request, SETUP_TIMEOUT).await.context("asking the NameServer")?;
    match response.code {
        response_code::SUCCESS => Ok(Some(fastjson::from_slice(&response.body).map_err(|e| anyhow!("{e}"))?)),
        response_code::TOPIC_NOT_EXIST => Ok(None),
        code => bail!("NameServer answered {code}: {}", response.remark.unwrap_or_default()),
    }
}

async fn create_topic(client: &RemotingClient, namesrv: &str, topic: &str, queues: i32) -> Result<()> {
    let request = RemotingCommand::request(request_code::GET_BROKER_CLUSTER_INFO);
    let response = client.invoke(namesrv, request, SETUP_TIMEOUT).await.context("asking for the cluster")?;
    anyhow::ensure!(response.code == response_code::SUCCESS, "cluster info refused: {:?}", response.remark);
    let cluster: ClusterInfo = fastjson::from_slice(&response.body).map_err(|e| anyhow!("{e}"))?;
    let masters: Vec<String> = cluster
        .broker_addr_table
        .values()
        .filter_map(|broker| broker.broker_addrs.get(&0).cloned())
        .collect();
    anyhow::ensure!(!masters.is_empty(), "no broker registered at {namesrv}");
    for addr in masters {
        let header = CreateTopicRequestHeader {
            topic: topic.to_owned(),
            default_topic: "TBW102".to_owned(),
            read_queue_nums: queues,
            write_queue_nums: queues,
            perm: apogee_common::perm::READ_WRITE,
            topic_filter_type: "SINGLE_TAG".to_owned(),
            order: false,
            ..CreateTopicRequestHeader::default()
        };
        let request = RemotingCommand::request(request_code::UPDATE_AND_CREATE_TOPIC).with_header(&header);
        let response = client.invoke(&addr, request, SETUP_TIMEOUT).await.context("creating the topic")?;
        anyhow::ensure!(
            response.code == response_code::SUCCESS,
            "{addr} refused the topic: {:?}",
            response.remark
        );
    }
    Ok(())
}
