//! Route fixtures the unit tests of several modules build alike.

use apogee_remoting::body::route::BrokerData;

/// Broker group `name` of cluster `C` with the given `(broker id, address)` members.
pub(crate) fn broker(name: &str, members: &[(i64, &str)]) -> BrokerData {
    BrokerData {
        broker_name: name.into(),
        cluster: "C".into(),
        broker_addrs: members.iter().map(|(id, addr)| (*id, (*addr).to_owned())).collect(),
        ..BrokerData::default()
    }
}
