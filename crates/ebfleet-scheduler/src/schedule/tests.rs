use super::*;

/// 0 built; 1, 2 need 0; 3 needs 1 and 2; 4 needs 1.
fn diamond() -> Dag {
    Dag::new(
        vec![false, true, true, true, true],
        vec![vec![], vec![0], vec![0], vec![1, 2], vec![1]],
        vec![100, 10, 50, 20, 5],
    )
}

fn settings() -> Settings {
    Settings {
        max_nodes: 4,
        max_instances: 10,
        idle_s: 600,
        boot_timeout_s: 1800,
        node_attempts: 2,
        held_retry_s: 300,
        capacity_wait_s: 900,
        lease_renew_s: 1800,
    }
}

fn pool(ids: &[(&str, bool)]) -> Vec<PoolInstance> {
    ids.iter()
        .map(|(id, online)| PoolInstance {
            id: id.to_string(),
            online: *online,
            instance_type: None,
        })
        .collect()
}

fn obs(now: u64, ended: Vec<(u32, Outcome)>, ids: &[(&str, bool)]) -> Observation {
    Observation {
        now,
        ended,
        desired: ids.len() as u32,
        pool: pool(ids),
        on_demand: false,
    }
}

fn running_on(s: &Schedule, unit: u32) -> Option<&str> {
    match &s.units[unit as usize] {
        UnitState::Running { node, .. } => Some(node),
        _ => None,
    }
}

#[test]
fn an_empty_pool_grows_to_the_ready_units() {
    let dag = diamond();
    let mut s = Schedule::new(&dag);
    let d = s.tick(&dag, &obs(0, vec![], &[]), &settings());
    assert!(d.dispatch.is_empty());
    assert_eq!(d.desired, Some(2), "units 1 and 2 are ready");
    assert!(!d.done);
    // Asked for, not there yet: no second request.
    let o = Observation {
        desired: 2,
        ..obs(10, vec![], &[])
    };
    assert_eq!(s.tick(&dag, &o, &settings()).desired, None);
}

#[test]
fn the_longest_remaining_path_goes_first() {
    let dag = diamond();
    let mut s = Schedule::new(&dag);
    s.tick(&dag, &obs(0, vec![], &[("i-a", false)]), &settings());
    let d = s.tick(&dag, &obs(60, vec![], &[("i-a", true)]), &settings());
    assert_eq!(
        d.dispatch,
        [Dispatch {
            unit: 2,
            node: "i-a".into(),
            attempt: 1,
            jobs_halved: 0
        }]
    );
    assert_eq!(d.desired, Some(2), "unit 1 still waits for a node");
    assert_eq!(s.nodes["i-a"].state, NodeState::Busy { unit: 2 });
}

#[test]
fn a_unit_waits_for_every_unit_it_needs() {
    let dag = diamond();
    let mut s = Schedule::new(&dag);
    let both = [("i-a", true), ("i-b", true)];
    let d = s.tick(&dag, &obs(0, vec![], &both), &settings());
    assert_eq!(d.dispatch.len(), 2);
    let d = s.tick(
        &dag,
        &obs(10, vec![(1, Outcome::Built)], &both),
        &settings(),
    );
    // 4 needs only 1; 3 needs 2 as well.
    assert_eq!(d.dispatch.iter().map(|x| x.unit).collect::<Vec<_>>(), [4]);
    let d = s.tick(
        &dag,
        &obs(50, vec![(2, Outcome::Built)], &both),
        &settings(),
    );
    assert_eq!(d.dispatch.iter().map(|x| x.unit).collect::<Vec<_>>(), [3]);
    let d = s.tick(
        &dag,
        &obs(70, vec![(3, Outcome::Built), (4, Outcome::Built)], &both),
        &settings(),
    );
    assert!(d.done);
    assert_eq!(d.retire.len(), 2, "no work left: idle nodes go at once");
    let c = s.counts(&dag);
    assert_eq!((c.built, c.waiting, c.running), (4, 0, 0));
}

#[test]
fn a_node_that_built_the_dependencies_gets_the_dependent() {
    let dag = diamond();
    let mut s = Schedule::new(&dag);
    let both = [("i-a", true), ("i-b", true)];
    s.tick(&dag, &obs(0, vec![], &both), &settings());
    let on1 = running_on(&s, 1).unwrap().to_string();
    // Unit 1's node finished first; the other node is idle longer, but 4
    // goes where 1 is installed.
    s.tick(&dag, &obs(5, vec![(2, Outcome::Built)], &both), &settings());
    let d = s.tick(
        &dag,
        &obs(10, vec![(1, Outcome::Built)], &both),
        &settings(),
    );
    assert!(
        d.dispatch.iter().any(|x| x.unit == 4 && x.node == on1),
        "{d:?}"
    );
}

#[test]
fn a_failure_skips_what_waits_for_it_and_nothing_else() {
    let dag = diamond();
    let mut s = Schedule::new(&dag);
    let both = [("i-a", true), ("i-b", true)];
    s.tick(&dag, &obs(0, vec![], &both), &settings());
    let failed = Outcome::Failed {
        class: "compile_error".into(),
        reason: "make: *** [all] Error 2".into(),
    };
    let d = s.tick(&dag, &obs(10, vec![(2, failed)], &both), &settings());
    assert_eq!(d.skipped, [(3, 2)]);
    assert_eq!(s.units[3], UnitState::Skipped { blocked_by: 2 });
    let d = s.tick(
        &dag,
        &obs(20, vec![(1, Outcome::Built)], &both),
        &settings(),
    );
    assert_eq!(d.dispatch.iter().map(|x| x.unit).collect::<Vec<_>>(), [4]);
    let d = s.tick(
        &dag,
        &obs(30, vec![(4, Outcome::Built)], &both),
        &settings(),
    );
    assert!(d.done);
    let c = s.counts(&dag);
    assert_eq!((c.built, c.failed, c.skipped), (2, 1, 1));
}

#[test]
fn a_lost_node_is_retired_and_only_its_unit_redone_until_given_up() {
    let dag = diamond();
    let mut s = Schedule::new(&dag);
    let ab = [("i-a", true), ("i-b", true)];
    s.tick(&dag, &obs(0, vec![], &ab), &settings());
    let lost_node = running_on(&s, 2).unwrap().to_string();
    let other = running_on(&s, 1).unwrap().to_string();
    let lost = || Outcome::NodeLost {
        reason: "heartbeat timed out".into(),
    };
    let d = s.tick(&dag, &obs(100, vec![(2, lost())], &ab), &settings());
    assert_eq!(d.retire, std::slice::from_ref(&lost_node));
    assert_eq!(s.units[2], UnitState::Waiting);
    assert_eq!(
        running_on(&s, 1),
        Some(other.as_str()),
        "the other build goes on"
    );
    assert_eq!(
        d.desired,
        Some(2),
        "the retirement lowers the desired 2 to 1; one node for the unit to redo"
    );
    // The lost node leaves the group; a new one comes.
    let bc = [(other.as_str(), true), ("i-c", true)];
    let d = s.tick(&dag, &obs(200, vec![], &bc), &settings());
    assert_eq!(
        d.dispatch,
        [Dispatch {
            unit: 2,
            node: "i-c".into(),
            attempt: 2,
            jobs_halved: 0
        }]
    );
    let d = s.tick(&dag, &obs(300, vec![(2, lost())], &bc), &settings());
    assert_eq!(d.gave_up, [2]);
    assert_eq!(d.skipped, [(3, 2)]);
    assert!(matches!(&s.units[2], UnitState::Failed { class, .. } if class == "node_lost"));
    assert_eq!(s.launched, 3);
}

/// AWS refuses a desired capacity over the group's maximum (max_nodes):
/// a node retired in the same tick as the pool grows must not count twice.
#[test]
fn a_full_pool_that_loses_a_node_asks_for_one_more_and_no_more() {
    let dag = Dag::new(vec![true; 6], vec![vec![]; 6], vec![1000; 6]);
    let mut s = Schedule::new(&dag);
    let full = [("i-a", true), ("i-b", true), ("i-c", true), ("i-d", true)];
    let d = s.tick(&dag, &obs(0, vec![], &full), &settings());
    assert_eq!(d.dispatch.len(), 4);
    let unit = d.dispatch[0].unit;
    let lost = Outcome::NodeLost {
        reason: "heartbeat timed out".into(),
    };
    let d = s.tick(&dag, &obs(100, vec![(unit, lost)], &full), &settings());
    assert_eq!(d.retire.len(), 1);
    // After the retirement the group wants 3; three busy nodes and three
    // ready units would use 6, but max_nodes is 4.
    assert_eq!(d.desired, Some(4));

    // The same when a node that never came online is retired.
    let mut s = Schedule::new(&dag);
    let booting = [("i-a", true), ("i-b", true), ("i-c", true), ("i-d", false)];
    s.tick(&dag, &obs(0, vec![], &booting), &settings());
    let d = s.tick(&dag, &obs(1800, vec![], &booting), &settings());
    assert_eq!(d.retire, ["i-d"]);
    assert_eq!(d.desired, Some(4));
}

#[test]
fn a_unit_held_elsewhere_comes_back_later() {
    let dag = Dag::new(vec![true], vec![vec![]], vec![10]);
    let mut s = Schedule::new(&dag);
    let a = [("i-a", true)];
    s.tick(&dag, &obs(0, vec![], &a), &settings());
    let d = s.tick(
        &dag,
        &obs(10, vec![(0, Outcome::Held { until: 7200 })], &a),
        &settings(),
    );
    assert_eq!(s.units[0], UnitState::Deferred { until: 310 });
    assert!(d.dispatch.is_empty() && d.retire.is_empty() && !d.done);
    let d = s.tick(&dag, &obs(310, vec![], &a), &settings());
    assert_eq!(d.dispatch.len(), 1);
    // A new execution: the first one ended (held).
    assert_eq!(d.dispatch[0].attempt, 2);
}

#[test]
fn idle_nodes_stay_a_while_then_go() {
    // 0 and 1 independent; 2 needs 1.
    let dag = Dag::new(
        vec![true; 3],
        vec![vec![], vec![], vec![1]],
        vec![10, 1000, 10],
    );
    let mut s = Schedule::new(&dag);
    let ab = [("i-a", true), ("i-b", true)];
    s.tick(&dag, &obs(0, vec![], &ab), &settings());
    let d = s.tick(&dag, &obs(10, vec![(0, Outcome::Built)], &ab), &settings());
    assert!(d.retire.is_empty(), "work will come: keep it for now");
    let d = s.tick(&dag, &obs(700, vec![], &ab), &settings());
    assert_eq!(d.retire.len(), 1, "idle 690 s > 600 s with nothing ready");
}

#[test]
fn the_pool_stays_within_its_caps() {
    let dag = Dag::new(vec![true; 6], vec![vec![]; 6], vec![10; 6]);
    let mut s = Schedule::new(&dag);
    let d = s.tick(&dag, &obs(0, vec![], &[]), &settings());
    assert_eq!(d.desired, Some(4), "max_nodes");
    let mut st = settings();
    st.max_instances = 3;
    let mut s = Schedule::new(&dag);
    let ab = [("i-a", true), ("i-b", true)];
    let d = s.tick(&dag, &obs(0, vec![], &ab), &st);
    assert_eq!(d.desired, Some(3), "two seen, one more allowed");
    let asked = Observation {
        desired: 3,
        ..obs(1, vec![], &ab)
    };
    let d = s.tick(&dag, &asked, &st);
    assert_eq!(d.desired, None, "{d:?}");
}

#[test]
fn spot_that_does_not_come_falls_back_to_on_demand() {
    let dag = Dag::new(vec![true], vec![vec![]], vec![10]);
    let mut s = Schedule::new(&dag);
    let short = |now| Observation {
        now,
        desired: 1,
        ..Observation::default()
    };
    assert!(!s.tick(&dag, &short(0), &settings()).on_demand);
    assert!(!s.tick(&dag, &short(600), &settings()).on_demand);
    assert!(s.tick(&dag, &short(900), &settings()).on_demand);
    assert!(!s.tick(&dag, &short(1000), &settings()).on_demand, "once");
}

#[test]
fn a_node_that_never_comes_online_is_retired() {
    let dag = Dag::new(vec![true], vec![vec![]], vec![10]);
    let mut s = Schedule::new(&dag);
    s.tick(&dag, &obs(0, vec![], &[("i-a", false)]), &settings());
    let d = s.tick(&dag, &obs(1800, vec![], &[("i-a", false)]), &settings());
    assert_eq!(d.retire, ["i-a"]);
}

#[test]
fn running_units_have_their_leases_renewed() {
    let dag = diamond();
    let mut s = Schedule::new(&dag);
    let a = [("i-a", true)];
    let d = s.tick(&dag, &obs(2000, vec![], &a), &settings());
    assert_eq!(d.renew, Vec::<u32>::new(), "nothing was running yet");
    assert!(s
        .tick(&dag, &obs(2100, vec![], &a), &settings())
        .renew
        .is_empty());
    assert_eq!(s.tick(&dag, &obs(3800, vec![], &a), &settings()).renew, [2]);
}

#[test]
fn an_outcome_seen_twice_changes_nothing() {
    let dag = diamond();
    let mut s = Schedule::new(&dag);
    let a = [("i-a", true)];
    s.tick(&dag, &obs(0, vec![], &a), &settings());
    s.tick(&dag, &obs(10, vec![(2, Outcome::Built)], &a), &settings());
    let before = s.clone();
    let d = s.tick(&dag, &obs(10, vec![(2, Outcome::Built)], &a), &settings());
    assert!(d.dispatch.is_empty());
    assert_eq!(s.units, before.units);
}

#[test]
fn node_seconds_count_from_first_sight_to_leaving() {
    let dag = diamond();
    let mut s = Schedule::new(&dag);
    s.tick(&dag, &obs(100, vec![], &[("i-a", true)]), &settings());
    assert_eq!(s.node_seconds(160), 60);
    s.tick(&dag, &obs(400, vec![], &[]), &settings());
    assert_eq!(s.node_seconds(1000), 300);
    assert_eq!(s.nodes_max, 1);
}

#[test]
fn the_state_round_trips_as_json() {
    let dag = diamond();
    let mut s = Schedule::new(&dag);
    s.tick(&dag, &obs(0, vec![], &[("i-a", true)]), &settings());
    let back: Schedule = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    assert_eq!(back, s);
}

#[test]
fn a_held_unit_is_failed_from_the_start_and_what_needs_it_skipped_once() {
    let mut dag = diamond();
    dag.held = vec![(1, "failed before (compile_error)".into())];
    let mut s = Schedule::new(&dag);
    let d = s.tick(&dag, &obs(0, vec![], &[("i-a", true)]), &settings());
    // 3 and 4 need 1; only 2 is dispatched.
    assert_eq!(d.skipped, [(3, 1), (4, 1)]);
    assert_eq!(d.dispatch.iter().map(|x| x.unit).collect::<Vec<_>>(), [2]);
    let c = s.counts(&dag);
    assert_eq!((c.failed, c.skipped, c.running), (1, 2, 1));
    let d = s.tick(
        &dag,
        &obs(10, vec![(2, Outcome::Built)], &[("i-a", true)]),
        &settings(),
    );
    assert!(d.skipped.is_empty(), "the skips were reported already");
    assert!(d.done);
}

fn failed(class: &str) -> Outcome {
    Outcome::Failed {
        class: class.into(),
        reason: "it broke".into(),
    }
}

/// Unit 2 of the diamond dispatched on i-a and ended with `outcome` at 100.
fn ended(outcome: Outcome) -> (Dag, Schedule, Decisions) {
    let dag = diamond();
    let mut s = Schedule::new(&dag);
    s.tick(&dag, &obs(0, vec![], &[("i-a", true)]), &settings());
    assert_eq!(running_on(&s, 2), Some("i-a"));
    let d = s.tick(
        &dag,
        &obs(100, vec![(2, outcome)], &[("i-a", true)]),
        &settings(),
    );
    (dag, s, d)
}

#[test]
fn out_of_memory_is_tried_again_with_half_the_jobs_then_given_up() {
    let (dag, mut s, d) = ended(failed("out_of_memory"));
    let again = d
        .dispatch
        .iter()
        .find(|x| x.unit == 2)
        .expect("tried again at once");
    assert_eq!((again.attempt, again.jobs_halved), (2, 1));
    let d = s.tick(
        &dag,
        &obs(200, vec![(2, failed("out_of_memory"))], &[("i-a", true)]),
        &settings(),
    );
    assert_eq!(
        d.dispatch.iter().find(|x| x.unit == 2).unwrap().jobs_halved,
        2
    );
    let d = s.tick(
        &dag,
        &obs(300, vec![(2, failed("out_of_memory"))], &[("i-a", true)]),
        &settings(),
    );
    assert!(d.dispatch.iter().all(|x| x.unit != 2));
    assert!(
        matches!(&s.units[2], UnitState::Failed { class, reason } if class == "out_of_memory" && reason.contains("halved"))
    );
    assert_eq!(
        d.skipped,
        [(3, 2)],
        "what needs it is skipped once it is given up"
    );
}

#[test]
fn a_failed_download_waits_longer_each_time() {
    let (dag, mut s, _) = ended(failed("download_failed"));
    assert_eq!(s.units[2], UnitState::Deferred { until: 400 });
    // Back at 400 (unit 1 took the node meanwhile and is done), dispatched,
    // fails again: twice the wait.
    let d = s.tick(
        &dag,
        &obs(400, vec![(1, Outcome::Built)], &[("i-a", true)]),
        &settings(),
    );
    assert!(d.dispatch.iter().any(|x| x.unit == 2 && x.jobs_halved == 0));
    s.tick(
        &dag,
        &obs(500, vec![(2, failed("download_failed"))], &[("i-a", true)]),
        &settings(),
    );
    assert_eq!(s.units[2], UnitState::Deferred { until: 1_100 });
}

#[test]
fn compile_errors_and_missing_sources_are_not_tried_again() {
    let (_, s, d) = ended(failed("compile_error"));
    assert!(matches!(&s.units[2], UnitState::Failed { reason, .. } if reason == "it broke"));
    assert_eq!(d.skipped, [(3, 2)]);
    let (_, s, _) = ended(failed("missing_source"));
    assert!(
        matches!(&s.units[2], UnitState::Failed { reason, .. } if reason.starts_with("needs an operator"))
    );
}

fn typed(ids: &[(&str, bool, &str)]) -> Vec<PoolInstance> {
    ids.iter()
        .map(|(id, online, t)| PoolInstance {
            id: id.to_string(),
            online: *online,
            instance_type: Some(t.to_string()),
        })
        .collect()
}

#[test]
fn node_time_is_kept_per_instance_type_and_market() {
    use ebfleet_core::cost::{Market, Usage};
    let dag = diamond();
    let mut s = Schedule::new(&dag);
    let two = typed(&[("i-a", true, "c7g.8xlarge"), ("i-b", true, "m7g.8xlarge")]);
    let o = |now, pool: Vec<PoolInstance>| Observation {
        now,
        desired: pool.len() as u32,
        pool,
        ..Observation::default()
    };
    s.tick(&dag, &o(0, two.clone()), &settings());
    s.tick(&dag, &o(100, two), &settings());
    // i-b is gone at 300; i-a lives on.
    s.tick(
        &dag,
        &o(300, typed(&[("i-a", true, "c7g.8xlarge")])),
        &settings(),
    );
    let usage = s.usage(400);
    let of = |t: &str| {
        usage
            .iter()
            .find(|u| u.instance_type.as_deref() == Some(t))
            .cloned()
    };
    assert_eq!(
        of("c7g.8xlarge"),
        Some(Usage {
            instance_type: Some("c7g.8xlarge".into()),
            market: Market::Spot,
            node_seconds: 400,
        })
    );
    assert_eq!(of("m7g.8xlarge").unwrap().node_seconds, 300);
    assert_eq!(
        usage.iter().map(|u| u.node_seconds).sum::<u64>(),
        s.node_seconds(400),
        "the types add up to the node time"
    );
    // Kept across the state's round trip through S3.
    let back: Schedule = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    assert_eq!(back.usage(400), usage);
}

#[test]
fn nodes_of_an_on_demand_pool_or_after_the_fallback_count_as_on_demand() {
    use ebfleet_core::cost::Market;
    let dag = diamond();
    let st = settings();
    // A spot pool that stays short of its desired capacity falls back.
    let mut s = Schedule::new(&dag);
    let spot = typed(&[("i-a", false, "c7g.8xlarge")]);
    let short = |now, pool: Vec<PoolInstance>| Observation {
        now,
        desired: 3,
        pool,
        ..Observation::default()
    };
    s.tick(&dag, &short(0, spot.clone()), &st);
    assert!(
        s.tick(&dag, &short(st.capacity_wait_s, spot), &st)
            .on_demand
    );
    let both = typed(&[("i-a", true, "c7g.8xlarge"), ("i-b", true, "c7g.8xlarge")]);
    s.tick(&dag, &short(st.capacity_wait_s + 10, both), &st);
    let usage = s.usage(st.capacity_wait_s + 110);
    let market = |m| {
        usage
            .iter()
            .filter(|u| u.market == m)
            .map(|u| u.node_seconds)
            .sum::<u64>()
    };
    assert_eq!(
        market(Market::Spot),
        st.capacity_wait_s + 110,
        "i-a came on spot"
    );
    assert_eq!(market(Market::OnDemand), 100, "i-b came after the fallback");

    // A pool made on-demand: every node is.
    let mut s = Schedule::new(&dag);
    let o = Observation {
        now: 0,
        desired: 1,
        pool: typed(&[("i-c", true, "c7g.8xlarge")]),
        on_demand: true,
        ..Observation::default()
    };
    s.tick(&dag, &o, &st);
    let usage = s.usage(50);
    assert_eq!(usage.len(), 1);
    assert_eq!(
        (usage[0].market, usage[0].node_seconds),
        (Market::OnDemand, 50)
    );
}

#[test]
fn node_time_of_an_older_state_counts_without_a_type() {
    let dag = diamond();
    let mut s = Schedule::new(&dag);
    // As a state written before types were kept reads.
    s.node_seconds_done = 500;
    let usage = s.usage(0);
    assert_eq!(usage.len(), 1);
    assert_eq!(
        (usage[0].instance_type.as_ref(), usage[0].node_seconds),
        (None, 500)
    );
}
