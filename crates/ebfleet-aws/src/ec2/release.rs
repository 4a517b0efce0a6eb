//! Releasing an execution's nodes: on every path out of the state machine,
//! possibly twice, possibly after someone terminated them by hand.

use super::{code, error, Ec2Error, Nodes};
use aws_sdk_ec2::operation::terminate_instances::TerminateInstancesOutput;
use aws_sdk_ec2::types::{Filter, InstanceStateName};
use ebfleet_core::capacity::{TAG_EXECUTION, TAG_PLATFORM};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// EC2's answer for an instance id it does not know (any more: terminated
/// instances disappear after about an hour).
const INSTANCE_NOT_FOUND: &str = "InvalidInstanceID.NotFound";

/// EC2's answers for a launch template that is gone.
const TEMPLATE_NOT_FOUND: &[&str] = &[
    "InvalidLaunchTemplateId.NotFound",
    "InvalidLaunchTemplateName.NotFoundException",
];

/// TerminateInstances takes at most this many ids.
const MAX_IDS_PER_CALL: usize = 1000;

/// The states of an instance that still runs or can run again.
const LIVE_STATES: &[InstanceStateName] = &[
    InstanceStateName::Pending,
    InstanceStateName::Running,
    InstanceStateName::Stopping,
    InstanceStateName::Stopped,
];

/// What [`Nodes::terminate`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Released {
    /// Instances this call terminated (now shutting down).
    pub terminated: Vec<String>,
    /// Instances that were already terminated, or that EC2 no longer knows.
    pub already_gone: Vec<String>,
    /// Launch templates of the execution deleted by this call.
    pub launch_templates_deleted: Vec<String>,
}

/// Instances in [`LIVE_STATES`].
fn live_state() -> Filter {
    Filter::builder()
        .name("instance-state-name")
        .set_values(Some(
            LIVE_STATES.iter().map(|s| s.as_str().to_string()).collect(),
        ))
        .build()
}

fn tag_filter(key: &str, value: &str) -> Filter {
    Filter::builder()
        .name(format!("tag:{key}"))
        .values(value)
        .build()
}

impl Released {
    fn record(&mut self, out: &TerminateInstancesOutput) {
        for change in out.terminating_instances() {
            let Some(id) = change.instance_id() else {
                continue;
            };
            let was = change.previous_state().and_then(|s| s.name());
            if was == Some(&InstanceStateName::Terminated) {
                self.already_gone.push(id.to_string());
            } else {
                self.terminated.push(id.to_string());
            }
        }
    }
}

impl Nodes {
    /// Terminate `instance_ids` and every other live instance tagged with
    /// `execution` (and `platform`, when given), then delete the launch
    /// templates tagged the same way.
    ///
    /// Idempotent: instances already terminated or unknown to EC2
    /// (`InvalidInstanceID.NotFound`) and templates already deleted count as
    /// released. The given ids go first, so that a failing tag query still
    /// leaves the known instances terminating.
    pub async fn terminate(
        &self,
        instance_ids: &[String],
        execution: &str,
        platform: Option<&str>,
    ) -> Result<Released, Ec2Error> {
        let scope = match platform {
            Some(p) => format!("execution {execution} platform {p}"),
            None => format!("execution {execution}"),
        };
        let mut filters = vec![tag_filter(TAG_EXECUTION, execution)];
        if let Some(p) = platform {
            filters.push(tag_filter(TAG_PLATFORM, p));
        }
        let mut released = Released::default();

        let mut ids: Vec<String> = Vec::new();
        for id in instance_ids {
            if !ids.contains(id) {
                ids.push(id.clone());
            }
        }
        self.terminate_ids(&ids, &scope, &mut released).await?;

        let missed: Vec<String> = self
            .live_instances(&filters, &scope)
            .await?
            .into_iter()
            .filter(|id| !ids.contains(id))
            .collect();
        if !missed.is_empty() {
            tracing::warn!(%scope, ?missed, "terminating tagged instances the caller did not name");
            self.terminate_ids(&missed, &scope, &mut released).await?;
        }

        released.launch_templates_deleted = self.delete_launch_templates(&filters, &scope).await?;
        tracing::info!(%scope, ?released, "released");
        Ok(released)
    }

    async fn terminate_ids(
        &self,
        ids: &[String],
        scope: &str,
        released: &mut Released,
    ) -> Result<(), Ec2Error> {
        for chunk in ids.chunks(MAX_IDS_PER_CALL) {
            let answer = self
                .client
                .terminate_instances()
                .set_instance_ids(Some(chunk.to_vec()))
                .send()
                .await;
            match answer {
                Ok(out) => released.record(&out),
                // One unknown id fails the whole call: ask for each alone.
                Err(e) if code(&e) == Some(INSTANCE_NOT_FOUND) && chunk.len() > 1 => {
                    for id in chunk {
                        let answer = self
                            .client
                            .terminate_instances()
                            .instance_ids(id)
                            .send()
                            .await;
                        match answer {
                            Ok(out) => released.record(&out),
                            Err(e) if code(&e) == Some(INSTANCE_NOT_FOUND) => {
                                released.already_gone.push(id.clone());
                            }
                            Err(e) => {
                                return Err(error(
                                    format!("{scope}: instance {id}"),
                                    "TerminateInstances",
                                    e,
                                ))
                            }
                        }
                    }
                }
                Err(e) if code(&e) == Some(INSTANCE_NOT_FOUND) => {
                    released.already_gone.extend(chunk.iter().cloned());
                }
                Err(e) => {
                    return Err(error(
                        format!("{scope}: instances {}", chunk.join(", ")),
                        "TerminateInstances",
                        e,
                    ))
                }
            }
        }
        Ok(())
    }

    /// Every execution that has live instances (the values of their
    /// execution tag): what the sweeper checks.
    pub async fn live_executions(&self) -> Result<BTreeSet<String>, Ec2Error> {
        let tagged = Filter::builder()
            .name("tag-key")
            .values(TAG_EXECUTION)
            .build();
        let mut pages = self
            .client
            .describe_instances()
            .filters(tagged)
            .filters(live_state())
            .into_paginator()
            .send();
        let mut executions = BTreeSet::new();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| error(format!("tag {TAG_EXECUTION}"), "DescribeInstances", e))?;
            for i in page.reservations().iter().flat_map(|r| r.instances()) {
                executions.extend(
                    i.tags()
                        .iter()
                        .filter(|t| t.key() == Some(TAG_EXECUTION))
                        .filter_map(|t| t.value().map(str::to_string)),
                );
            }
        }
        Ok(executions)
    }

    /// Ids of the instances matching `filters` that are not shutting down
    /// or terminated.
    async fn live_instances(
        &self,
        filters: &[Filter],
        scope: &str,
    ) -> Result<Vec<String>, Ec2Error> {
        let mut all = filters.to_vec();
        all.push(live_state());
        let mut pages = self
            .client
            .describe_instances()
            .set_filters(Some(all))
            .into_paginator()
            .send();
        let mut ids = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| error(scope.to_string(), "DescribeInstances", e))?;
            for r in page.reservations() {
                for i in r.instances() {
                    if let Some(id) = i.instance_id() {
                        ids.push(id.to_string());
                    }
                }
            }
        }
        Ok(ids)
    }

    /// Delete the launch templates matching `filters`; their ids.
    async fn delete_launch_templates(
        &self,
        filters: &[Filter],
        scope: &str,
    ) -> Result<Vec<String>, Ec2Error> {
        let mut pages = self
            .client
            .describe_launch_templates()
            .set_filters(Some(filters.to_vec()))
            .into_paginator()
            .send();
        let mut ids = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| error(scope.to_string(), "DescribeLaunchTemplates", e))?;
            ids.extend(
                page.launch_templates()
                    .iter()
                    .filter_map(|t| t.launch_template_id())
                    .map(str::to_string),
            );
        }
        let mut deleted = Vec::new();
        for id in ids {
            match self
                .client
                .delete_launch_template()
                .launch_template_id(&id)
                .send()
                .await
            {
                Ok(_) => deleted.push(id),
                Err(e) if code(&e).is_some_and(|c| TEMPLATE_NOT_FOUND.contains(&c)) => {}
                Err(e) => {
                    return Err(error(
                        format!("{scope}: launch template {id}"),
                        "DeleteLaunchTemplate",
                        e,
                    ))
                }
            }
        }
        Ok(deleted)
    }
}
