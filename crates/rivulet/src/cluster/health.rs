//! `rivulet cluster health`: the container healthcheck. A node is healthy when its broker
//! answers Kafka requests on the given address, the quorum has an active controller, and (with
//! `--node-id`, taken from `RIVULET_NODE_ID` in the compose containers) the cluster lists that
//! broker as registered and unfenced. A broker answers clients only once the controller has
//! unfenced it, so a node that is still catching up, or fenced, is not healthy.

use super::snapshot::{BrokerState, ClusterSnapshot};

/// Why `snapshot` (as the node itself reports it) does not show a healthy node `node_id`.
pub fn verdict(snapshot: &ClusterSnapshot, node_id: Option<i32>) -> Result<String, String> {
    if snapshot.controller < 0 {
        return Err("no active controller".to_string());
    }
    let Some(id) = node_id else {
        return Ok(format!("controller {}", snapshot.controller));
    };
    match snapshot.brokers.get(&id).map(|b| b.state) {
        Some(BrokerState::Up) => Ok(format!(
            "broker {id} up, controller {}",
            snapshot.controller
        )),
        Some(state) => Err(format!("broker {id} is {}", state.word())),
        None => Err(format!("broker {id} is not registered")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::snapshot::Broker;

    fn snapshot(controller: i32, brokers: &[(i32, BrokerState)]) -> ClusterSnapshot {
        ClusterSnapshot {
            controller,
            brokers: brokers
                .iter()
                .map(|&(id, state)| {
                    (
                        id,
                        Broker {
                            address: Some(format!("rivulet-{id}:9092")),
                            state,
                        },
                    )
                })
                .collect(),
            ..ClusterSnapshot::default()
        }
    }

    #[test]
    fn an_unfenced_broker_with_a_controller_is_healthy() {
        let s = snapshot(2, &[(1, BrokerState::Up), (2, BrokerState::Up)]);
        assert_eq!(verdict(&s, Some(1)), Ok("broker 1 up, controller 2".into()));
        assert!(verdict(&s, None).is_ok());
    }

    #[test]
    fn no_controller_fenced_or_unknown_is_unhealthy() {
        let s = snapshot(-1, &[(1, BrokerState::Up)]);
        assert_eq!(verdict(&s, Some(1)), Err("no active controller".into()));
        let s = snapshot(2, &[(1, BrokerState::Fenced), (2, BrokerState::Up)]);
        assert_eq!(verdict(&s, Some(1)), Err("broker 1 is fenced".into()));
        assert_eq!(
            verdict(&s, Some(3)),
            Err("broker 3 is not registered".into())
        );
    }
}
