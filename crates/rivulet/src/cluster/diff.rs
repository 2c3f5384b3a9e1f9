//! What changed between two snapshots, as [`ClusterEvent`]s in a fixed order: the controller,
//! then brokers, then topics created and deleted, then partitions (leaders before ISRs), with
//! many partitions of an internal topic summarized. Pure.

use rivulet_controller::events::{summarize, ClusterEvent};

use super::snapshot::{BrokerState, ClusterSnapshot};

/// The events that lead from `before` to `after`.
pub fn diff(before: &ClusterSnapshot, after: &ClusterSnapshot) -> Vec<ClusterEvent> {
    let mut events = Vec::new();
    let epoch_changed = match (before.controller_epoch, after.controller_epoch) {
        (Some(a), Some(b)) => a != b,
        _ => false,
    };
    if before.controller != after.controller || epoch_changed {
        events.push(if after.controller < 0 {
            ClusterEvent::NoController
        } else {
            ClusterEvent::ControllerElected {
                node: after.controller,
                epoch: after.controller_epoch.unwrap_or(-1),
            }
        });
    }

    let ids = before.brokers.keys().chain(after.brokers.keys());
    let mut ids: Vec<i32> = ids.copied().collect();
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        let was = before
            .brokers
            .get(&id)
            .map_or(BrokerState::Gone, |b| b.state);
        let is = after
            .brokers
            .get(&id)
            .map_or(BrokerState::Gone, |b| b.state);
        let event = match (was, is) {
            (BrokerState::Gone, BrokerState::Up | BrokerState::Fenced) => {
                Some(ClusterEvent::BrokerRegistered(id))
            }
            (BrokerState::Up, BrokerState::Fenced) => Some(ClusterEvent::BrokerFenced(id)),
            (BrokerState::Fenced, BrokerState::Up) => Some(ClusterEvent::BrokerUnfenced(id)),
            (BrokerState::Up | BrokerState::Fenced, BrokerState::Gone) => {
                Some(ClusterEvent::BrokerGone(id))
            }
            // Unchanged, or first seen already gone.
            _ => None,
        };
        events.extend(event);
    }

    for (name, topic) in &after.topics {
        if !before.topics.contains_key(name) {
            events.push(ClusterEvent::TopicCreated {
                topic: name.clone(),
                partitions: topic.partitions.len(),
            });
        }
    }
    for name in before.topics.keys() {
        if !after.topics.contains_key(name) {
            events.push(ClusterEvent::TopicDeleted {
                topic: name.clone(),
            });
        }
    }
    let mut leaders = Vec::new();
    let mut isrs = Vec::new();
    for (name, topic) in &after.topics {
        let Some(old) = before.topics.get(name) else {
            continue;
        };
        if topic.partitions.len() > old.partitions.len() {
            events.push(ClusterEvent::PartitionsAdded {
                topic: name.clone(),
                partitions: topic.partitions.len(),
            });
        }
        for (index, p) in &topic.partitions {
            let Some(was) = old.partitions.get(index) else {
                continue;
            };
            leaders.extend(ClusterEvent::leader_change(
                name,
                *index,
                was.leader,
                p.leader,
                p.leader_epoch,
            ));
            isrs.extend(ClusterEvent::isr_change(name, *index, &was.isr, &p.isr));
        }
    }
    events.extend(leaders);
    events.extend(isrs);
    summarize(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::snapshot::tests::{describe_cluster, describe_quorum, metadata};
    use crate::cluster::snapshot::{from_responses, Broker, Partition, Topic};

    fn lines(events: &[ClusterEvent]) -> Vec<String> {
        events.iter().map(ToString::to_string).collect()
    }

    fn base() -> ClusterSnapshot {
        from_responses(
            &metadata(),
            Some(&describe_cluster()),
            Some(&describe_quorum(2, 7)),
        )
    }

    #[test]
    fn nothing_changed() {
        assert!(diff(&base(), &base()).is_empty());
    }

    #[test]
    fn a_broker_dies_and_its_partitions_move() {
        let before = base();
        let mut after = before.clone();
        after.brokers.get_mut(&1).unwrap().state = BrokerState::Fenced;
        let orders = after.topics.get_mut("orders").unwrap();
        let p0 = orders.partitions.get_mut(&0).unwrap();
        p0.leader = 2;
        p0.leader_epoch = 5;
        p0.isr = vec![2];
        let offsets = after.topics.get_mut("__consumer_offsets").unwrap();
        let c0 = offsets.partitions.get_mut(&0).unwrap();
        c0.leader = -1;
        c0.leader_epoch = 5;
        assert_eq!(
            lines(&diff(&before, &after)),
            [
                "broker 1 fenced",
                "__consumer_offsets-0 has no leader (epoch 5)",
                "leader of orders-0 moved 1 -> 2 at epoch 5",
                "ISR of orders-0 shrank to [2]",
            ]
        );
    }

    #[test]
    fn controller_changes() {
        let before = base();
        let mut after = before.clone();
        after.controller = 3;
        after.controller_epoch = Some(8);
        assert_eq!(
            lines(&diff(&before, &after)),
            ["controller elected: node 3 at epoch 8"]
        );
        let mut same_node = before.clone();
        same_node.controller_epoch = Some(9);
        assert_eq!(
            lines(&diff(&before, &same_node)),
            ["controller elected: node 2 at epoch 9"],
            "re-elected in a new epoch"
        );
        let mut none = before.clone();
        none.controller = -1;
        assert_eq!(lines(&diff(&before, &none)), ["no active controller"]);
    }

    #[test]
    fn brokers_come_and_go() {
        let before = base();
        let mut after = before.clone();
        after.brokers.get_mut(&3).unwrap().state = BrokerState::Up;
        after.brokers.get_mut(&2).unwrap().state = BrokerState::Gone;
        after.brokers.insert(
            5,
            Broker {
                address: Some("localhost:9005".into()),
                state: BrokerState::Fenced,
            },
        );
        after.brokers.remove(&4);
        assert_eq!(
            lines(&diff(&before, &after)),
            ["broker 2 gone", "broker 3 unfenced", "broker 5 registered"]
        );
    }

    #[test]
    fn topics_created_grown_and_deleted() {
        let before = base();
        let mut after = before.clone();
        after.topics.remove("orders");
        let mut payments = Topic::default();
        for i in 0..3 {
            payments.partitions.insert(i, Partition::default());
        }
        after.topics.insert("payments".into(), payments);
        after
            .topics
            .get_mut("__consumer_offsets")
            .unwrap()
            .partitions
            .insert(1, Partition::default());
        assert_eq!(
            lines(&diff(&before, &after)),
            [
                "topic payments created (3 partitions)",
                "topic orders deleted",
                "topic __consumer_offsets now has 2 partitions",
            ]
        );
    }

    #[test]
    fn internal_topic_moves_are_summarized() {
        let mut before = base();
        let offsets = before.topics.get_mut("__consumer_offsets").unwrap();
        for i in 0..50 {
            offsets.partitions.insert(
                i,
                Partition {
                    leader: 1,
                    leader_epoch: 1,
                    replicas: vec![1, 2],
                    isr: vec![1, 2],
                },
            );
        }
        let mut after = before.clone();
        let offsets = after.topics.get_mut("__consumer_offsets").unwrap();
        for i in 0..17 {
            let p = offsets.partitions.get_mut(&i).unwrap();
            p.leader = 2;
            p.leader_epoch = 2;
            p.isr = vec![2];
        }
        assert_eq!(
            lines(&diff(&before, &after)),
            [
                "moved the leaders of 17 __consumer_offsets partitions",
                "changed the ISR of 17 __consumer_offsets partitions",
            ]
        );
    }
}
