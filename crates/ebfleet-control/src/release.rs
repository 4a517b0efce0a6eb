//! Release: delete a platform's pool (its Auto Scaling group) and terminate
//! its instances, by id and by the execution's tag, and delete its launch
//! templates, on every path out of the state machines; without a platform,
//! every pool and instance of the execution (what the rule on a failed or
//! aborted run sends). What is already gone is released too, so running it
//! twice is safe.

use crate::capacity::pool_name;
use crate::Env;
use ebfleet_aws::ec2::{Ec2Error, Released};
use ebfleet_aws::CallError;
use ebfleet_core::capacity::TAG_EXECUTION;
use ebfleet_core::names::{ExecutionName, PlatformName};
use serde::{Deserialize, Serialize};

/// What the release Lambda is asked: to store the run's summary (the
/// pipeline's last state, [`crate::summary`]), or to release.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Request {
    Summary(crate::summary::Input),
    Release(Input),
}

/// The release Lambda's answer to a [`Request`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Response {
    Summary(crate::summary::Output),
    Release(Output),
}

/// The error of a [`Request`].
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Summary(#[from] crate::summary::Error),
    #[error(transparent)]
    Release(#[from] Error),
}

impl crate::failure::Failure for RequestError {
    fn kind(&self) -> crate::failure::Kind {
        match self {
            RequestError::Summary(e) => e.kind(),
            RequestError::Release(e) => e.kind(),
        }
    }
}

/// The release Lambda: a summary to store, or what to release.
pub async fn handle_request(env: &Env, request: Request) -> Result<Response, RequestError> {
    Ok(match request {
        Request::Summary(s) => Response::Summary(crate::summary::handle(env, s).await?),
        Request::Release(r) => Response::Release(handle(env, r).await?),
    })
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Input {
    pub execution: ExecutionName,
    /// Absent: every platform of the execution (the rule that releases a
    /// failed or aborted execution knows only its name).
    #[serde(default)]
    pub platform: Option<PlatformName>,
    /// Instances to terminate besides those found by the execution's and
    /// platform's tags (which are always found); usually empty.
    #[serde(default)]
    pub instance_ids: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Output {
    /// Instances this call terminated.
    pub terminated: Vec<String>,
    /// Instances that were already terminated or unknown to EC2.
    pub already_gone: Vec<String>,
    /// The execution's launch templates this call deleted.
    pub launch_templates_deleted: Vec<String>,
    /// The Auto Scaling groups this call deleted.
    #[serde(default)]
    pub pools_deleted: Vec<String>,
}

impl From<Released> for Output {
    fn from(r: Released) -> Self {
        Output {
            terminated: r.terminated,
            already_gone: r.already_gone,
            launch_templates_deleted: r.launch_templates_deleted,
            pools_deleted: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("releasing {scope}: {source}")]
    Terminate {
        scope: String,
        #[source]
        source: Ec2Error,
    },
    #[error("releasing {scope}: {source}")]
    Pool {
        scope: String,
        #[source]
        source: CallError,
    },
}

impl crate::failure::Failure for Error {
    fn kind(&self) -> crate::failure::Kind {
        match self {
            Error::Terminate { source, .. } => source.kind(),
            Error::Pool { source, .. } => {
                crate::failure::Kind::retry_or(source.transient, crate::failure::Kind::Failed)
            }
        }
    }
}

pub async fn handle(env: &Env, input: Input) -> Result<Output, Error> {
    let platform = input.platform.as_ref().map(PlatformName::as_str);
    let scope = || match platform {
        Some(p) => format!("platform {p} of execution {}", input.execution),
        None => format!("every platform of execution {}", input.execution),
    };
    // The groups first, so none launches a replacement for what goes next.
    let pools = match &input.platform {
        Some(p) => vec![pool_name(&input.execution, p)],
        None => env
            .pools
            .tagged(TAG_EXECUTION, input.execution.as_str())
            .await
            .map_err(|source| Error::Pool {
                scope: scope(),
                source,
            })?,
    };
    for pool in &pools {
        env.pools.delete(pool).await.map_err(|source| Error::Pool {
            scope: scope(),
            source,
        })?;
    }
    let released = env
        .nodes
        .terminate(&input.instance_ids, input.execution.as_str(), platform)
        .await
        .map_err(|source| Error::Terminate {
            scope: scope(),
            source,
        })?;
    tracing::info!(
        execution = %input.execution,
        platform = platform.unwrap_or("*"),
        terminated = released.terminated.len(),
        already_gone = released.already_gone.len(),
        "released"
    );
    Ok(Output {
        pools_deleted: pools,
        ..released.into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_may_be_left_out() {
        let i: Input =
            serde_json::from_str(r#"{"execution":"e1","platform":"amzn-2023_graviton-3"}"#)
                .unwrap();
        assert!(i.instance_ids.is_empty());
        assert!(serde_json::from_str::<Input>(
            r#"{"execution":"e 1; rm","platform":"amzn-2023_graviton-3"}"#
        )
        .is_err());
    }

    /// Without a platform, everything tagged with the execution goes:
    /// what the rule on a failed or aborted execution sends.
    #[tokio::test]
    async fn without_a_platform_every_instance_of_the_execution_is_released() {
        use aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput;
        use aws_sdk_ec2::operation::describe_launch_templates::DescribeLaunchTemplatesOutput;
        use aws_sdk_ec2::operation::terminate_instances::TerminateInstancesOutput;
        use aws_sdk_ec2::types::{
            Instance, InstanceState, InstanceStateChange, InstanceStateName, Reservation,
        };
        use aws_smithy_mocks::mock;

        fn scoped(f: &[aws_sdk_ec2::types::Filter]) -> bool {
            let n: Vec<String> = f
                .iter()
                .filter_map(|f| f.name().map(str::to_string))
                .collect();
            n.contains(&"tag:ebfleet:execution".to_string())
                && !n.iter().any(|n| n.contains("platform"))
        }
        let describe = mock!(aws_sdk_ec2::Client::describe_instances)
            .match_requests(|q| scoped(q.filters()))
            .then_output(|| {
                DescribeInstancesOutput::builder()
                    .reservations(
                        Reservation::builder()
                            .instances(
                                Instance::builder()
                                    .instance_id("i-0aaaaaaaaaaaaaaa1")
                                    .build(),
                            )
                            .instances(
                                Instance::builder()
                                    .instance_id("i-0aaaaaaaaaaaaaaa2")
                                    .build(),
                            )
                            .build(),
                    )
                    .build()
            });
        let terminate = mock!(aws_sdk_ec2::Client::terminate_instances)
            .match_requests(|q| q.instance_ids().len() == 2)
            .then_output(|| {
                let change = |id: &str| {
                    InstanceStateChange::builder()
                        .instance_id(id)
                        .previous_state(
                            InstanceState::builder()
                                .name(InstanceStateName::Running)
                                .build(),
                        )
                        .build()
                };
                TerminateInstancesOutput::builder()
                    .terminating_instances(change("i-0aaaaaaaaaaaaaaa1"))
                    .terminating_instances(change("i-0aaaaaaaaaaaaaaa2"))
                    .build()
            });
        let templates = mock!(aws_sdk_ec2::Client::describe_launch_templates)
            .match_requests(|q| scoped(q.filters()))
            .then_output(|| DescribeLaunchTemplatesOutput::builder().build());
        let pools = mock!(aws_sdk_autoscaling::Client::describe_auto_scaling_groups)
            .match_requests(|q| {
                q.filters().iter().any(|f| {
                    f.name() == Some("tag:ebfleet:execution") && f.values() == ["run-1"]
                })
            })
            .then_output(|| {
                aws_sdk_autoscaling::operation::describe_auto_scaling_groups::DescribeAutoScalingGroupsOutput::builder()
                    .auto_scaling_groups(
                        aws_sdk_autoscaling::types::AutoScalingGroup::builder()
                            .auto_scaling_group_name("ebfleet-run-1-amzn-2023_graviton-3")
                            .build(),
                    )
                    .build()
            });
        let delete = mock!(aws_sdk_autoscaling::Client::delete_auto_scaling_group)
            .match_requests(|q| {
                q.auto_scaling_group_name() == Some("ebfleet-run-1-amzn-2023_graviton-3")
                    && q.force_delete() == Some(true)
            })
            .then_output(|| {
                aws_sdk_autoscaling::operation::delete_auto_scaling_group::DeleteAutoScalingGroupOutput::builder().build()
            });
        let mocks = crate::testing::Mocks {
            ec2: vec![&describe, &terminate, &templates],
            autoscaling: vec![&pools, &delete],
            ..Default::default()
        };
        let input: Input = serde_json::from_str(r#"{"execution":"run-1"}"#).unwrap();
        assert_eq!(input.platform, None);
        let out = handle(&mocks.env(), input).await.unwrap();
        assert_eq!(
            out.terminated,
            ["i-0aaaaaaaaaaaaaaa1", "i-0aaaaaaaaaaaaaaa2"]
        );
        assert_eq!((describe.num_calls(), terminate.num_calls()), (1, 1));
        assert_eq!(out.pools_deleted, ["ebfleet-run-1-amzn-2023_graviton-3"]);
        assert_eq!(delete.num_calls(), 1);
    }
}
