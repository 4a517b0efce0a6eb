//! Test support: an [`Env`] over `aws-smithy-mocks` clients. A service a
//! test does not pass gets a client with no rule, which fails the test if
//! the handler calls it.

use crate::Env;
use aws_smithy_mocks::{mock_client, Rule, RuleMode};
use ebfleet_aws::{
    autoscaling::Pools, dynamodb::Records, ec2::Nodes, kms::Kms, s3::Store, sfn::StepFunctions,
    ssm::Ssm,
};
use ebfleet_core::clock::Clock;

pub const BUCKET: &str = "ebfleet-bucket";
pub const TABLE: &str = "ebfleet-records";

/// Mock rules per service; empty means "must not be called".
#[derive(Default)]
pub struct Mocks<'a> {
    pub s3: Vec<&'a Rule>,
    pub dynamodb: Vec<&'a Rule>,
    pub ec2: Vec<&'a Rule>,
    pub autoscaling: Vec<&'a Rule>,
    pub ssm: Vec<&'a Rule>,
    pub sfn: Vec<&'a Rule>,
    pub kms: Vec<&'a Rule>,
}

impl Mocks<'_> {
    /// The clients, answering by the first matching rule, without the
    /// SDK's retries (a throttling answer reaches the handler at once).
    pub fn env(&self) -> Env {
        use aws_sdk_dynamodb::config::retry::RetryConfig;
        let r = RetryConfig::disabled;
        Env {
            store: Store::new(
                mock_client!(
                    aws_sdk_s3,
                    RuleMode::MatchAny,
                    self.s3.iter().copied(),
                    |c| c.retry_config(r())
                ),
                BUCKET,
            ),
            records: Records::new(
                mock_client!(
                    aws_sdk_dynamodb,
                    RuleMode::MatchAny,
                    self.dynamodb.iter().copied(),
                    |c| c.retry_config(r())
                ),
                TABLE,
            ),
            nodes: Nodes::new(mock_client!(
                aws_sdk_ec2,
                RuleMode::MatchAny,
                self.ec2.iter().copied(),
                |c| c.retry_config(r())
            )),
            pools: Pools::new(mock_client!(
                aws_sdk_autoscaling,
                RuleMode::MatchAny,
                self.autoscaling.iter().copied(),
                |c| c.retry_config(r())
            )),
            ssm: Ssm::new(mock_client!(
                aws_sdk_ssm,
                RuleMode::MatchAny,
                self.ssm.iter().copied(),
                |c| c.retry_config(r())
            )),
            sfn: StepFunctions::new(mock_client!(
                aws_sdk_sfn,
                RuleMode::MatchAny,
                self.sfn.iter().copied(),
                |c| c.retry_config(r())
            )),
            kms: Kms::new(mock_client!(
                aws_sdk_kms,
                RuleMode::MatchAny,
                self.kms.iter().copied(),
                |c| c.retry_config(r())
            )),
            clock: Clock::system(),
        }
    }
}

/// Settings from `pairs` (variable, value), as a handler reads them from
/// the environment.
pub fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| map.get(name).cloned()
}
