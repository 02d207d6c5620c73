//! A controller-mode broker's id (storage spec §7.3): asked of the controllers once and kept
//! in `brokerIdentity` (`cluster#broker#id`) under the store root, so a restarted broker is
//! the same replica. While an id is being applied for, `brokerIdentity-temp` also keeps the
//! check code (`cluster#broker#id#code`), so a broker that crashed mid-way applies for the
//! same id again and the controllers recognise it.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use apogee_controller::client::ControllerClient;
use apogee_remoting::code::response_code;

use crate::BrokerState;

/// The identity file's name (Java's).
pub const IDENTITY_FILE: &str = "brokerIdentity";
/// The file of an application in progress (Java's).
pub const TEMP_IDENTITY_FILE: &str = "brokerIdentity-temp";
/// Applications tried before the broker gives up for this round (another broker of the set
/// took each id first).
const MAX_APPLICATIONS: usize = 10;
/// Pause after a refusal that was not about the id itself.
const APPLICATION_PAUSE_MS: u64 = 200;

/// What the files hold.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Identity {
    cluster: String,
    broker: String,
    broker_id: i64,
    check_code: Option<String>,
}

impl Identity {
    fn render(&self) -> String {
        match &self.check_code {
            Some(code) => format!("{}#{}#{}#{code}", self.cluster, self.broker, self.broker_id),
            None => format!("{}#{}#{}", self.cluster, self.broker, self.broker_id),
        }
    }

    fn parse(text: &str) -> Result<Self, String> {
        let fields: Vec<&str> = text.trim().splitn(4, '#').collect();
        let [cluster, broker, id, rest @ ..] = fields.as_slice() else {
            return Err(format!("expected cluster#broker#id, found {text:?}"));
        };
        let broker_id = id.parse::<i64>().map_err(|_| format!("bad broker id {id:?}"))?;
        if broker_id <= 0 {
            return Err(format!("broker id {broker_id} is not a controller id"));
        }
        Ok(Self {
            cluster: (*cluster).to_owned(),
            broker: (*broker).to_owned(),
            broker_id,
            check_code: rest.first().map(|code| (*code).to_owned()),
        })
    }
}

fn read(path: &Path) -> io::Result<Option<Identity>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Identity::parse(&text).map(Some).map_err(|error| {
            io::Error::new(io::ErrorKind::InvalidData, format!("{}: {error}", path.display()))
        }),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

fn paths(state: &BrokerState) -> (PathBuf, PathBuf) {
    let root = &state.config.store.store_path_root_dir;
    (root.join(IDENTITY_FILE), root.join(TEMP_IDENTITY_FILE))
}

/// Runs file work on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(|error| error.to_string()),
        Err(error) => Err(error.to_string()),
    }
}

/// The broker's controller id: from `brokerIdentity`, or applied for now.
pub async fn obtain(state: &BrokerState, client: &ControllerClient) -> Result<i64, String> {
    let (path, temp_path) = paths(state);
    let cluster = state.config.broker_cluster_name.clone();
    let broker = state.config.broker_name.clone();
    let (kept, pending) = {
        let (path, temp_path) = (path.clone(), temp_path.clone());
        blocking(move || Ok((read(&path)?, read(&temp_path).unwrap_or(None)))).await?
    };
    if let Some(kept) = kept {
        if kept.cluster != cluster || kept.broker != broker {
            return Err(format!(
                "{} belongs to {}/{}, but this broker is {cluster}/{broker}",
                path.display(),
                kept.cluster,
                kept.broker
            ));
        }
        return Ok(kept.broker_id);
    }
    let mut pending = pending.filter(|pending| pending.cluster == cluster && pending.broker == broker);
    for _ in 0..MAX_APPLICATIONS {
        let application = match pending.take() {
            Some(application) => application,
            None => {
                let reply =
                    client.get_next_broker_id(&cluster, &broker).await.map_err(|error| error.to_string())?;
                let next = reply.header.next_broker_id.filter(|_| reply.is_success()).ok_or_else(|| {
                    format!("no next broker id: {} {}", reply.code, reply.remark.unwrap_or_default())
                })?;
                let code = format!("{};{}", state.store_host, now_ms());
                let application = Identity {
                    cluster: cluster.clone(),
                    broker: broker.clone(),
                    broker_id: next,
                    check_code: Some(code),
                };
                let (temp_path, text) = (temp_path.clone(), application.render());
                blocking(move || apogee_common::fs::write_atomically(&temp_path, text.as_bytes())).await?;
                application
            }
        };
        let code = application.check_code.clone().unwrap_or_default();
        let reply = client
            .apply_broker_id(&cluster, &broker, application.broker_id, &code)
            .await
            .map_err(|error| error.to_string())?;
        if reply.is_success() {
            let kept = Identity { check_code: None, ..application };
            let (path, temp_path, text) = (path.clone(), temp_path.clone(), kept.render());
            blocking(move || {
                apogee_common::fs::write_atomically(&path, text.as_bytes())?;
                std::fs::remove_file(&temp_path).or_else(ignore_missing)
            })
            .await?;
            tracing::info!(broker_id = kept.broker_id, "controller id applied for and kept");
            return Ok(kept.broker_id);
        }
        tracing::warn!(
            broker_id = application.broker_id,
            code = reply.code,
            remark = reply.remark.as_deref().unwrap_or(""),
            "broker id refused; asking for another"
        );
        if reply.code != response_code::CONTROLLER_BROKER_ID_INVALID {
            // Not a taken id: the controllers are busy (a new leader); do not hammer them.
            tokio::time::sleep(Duration::from_millis(APPLICATION_PAUSE_MS)).await;
        }
        let temp_path = temp_path.clone();
        blocking(move || std::fs::remove_file(&temp_path).or_else(ignore_missing)).await?;
    }
    Err(format!("no broker id granted after {MAX_APPLICATIONS} applications"))
}

fn ignore_missing(error: io::Error) -> io::Result<()> {
    if error.kind() == io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(error)
    }
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_round_trip_in_java_text() {
        let kept = Identity { cluster: "c".into(), broker: "b".into(), broker_id: 3, check_code: None };
        assert_eq!(kept.render(), "c#b#3");
        assert_eq!(Identity::parse("c#b#3\n").unwrap(), kept);
        let pending = Identity { check_code: Some("127.0.0.1:10911;1700000000000".into()), ..kept };
        assert_eq!(Identity::parse(&pending.render()).unwrap(), pending);
        assert!(Identity::parse("c#b").is_err());
        assert!(Identity::parse("c#b#0").is_err(), "0 is the master's role, not an id");
        assert!(Identity::parse("c#b#x").is_err());
    }
}
