//! Pending easyconfig keys (`pk = PENDING`, `sk = KEY#<key>`, see
//! `ebfleet_core::trigger`): what the trigger stores while an execution
//! runs and hands to the follow-up when it ends.

use super::{attr, DynamoError, Records, SERVICE};
use crate::call::CallError;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, WriteRequest};
use ebfleet_core::names::EasyconfigKey;
use ebfleet_core::trigger::{key_from_pending_sk, pending_sk, PENDING_PK, PENDING_TTL_SECS};
use std::collections::HashMap;

/// The table's TTL attribute; only pending items carry it.
pub const TTL: &str = "ttl";
/// BatchWriteItem's limit of requests per call.
const BATCH: usize = 25;
/// Calls of BatchWriteItem for one chunk before unprocessed deletes are an
/// error (each retry waits a little longer).
const MAX_ROUNDS: u32 = 8;
const ALL_PENDING: &str = "KEY#*";

impl Records {
    /// Store `key` as pending at `now` (Unix seconds). Idempotent: storing
    /// it again only moves its expiry.
    pub async fn add_pending(&self, key: &EasyconfigKey, now: u64) -> Result<(), DynamoError> {
        let sk = pending_sk(key);
        self.client
            .put_item()
            .table_name(&self.table)
            .item(attr::PK, AttributeValue::S(PENDING_PK.into()))
            .item(attr::SK, AttributeValue::S(sk.clone()))
            .item("added", AttributeValue::N(now.to_string()))
            .item(TTL, AttributeValue::N((now + PENDING_TTL_SECS).to_string()))
            .send()
            .await
            .map_err(|e| self.error("PutItem", PENDING_PK, &sk, e))?;
        Ok(())
    }

    /// Every pending key, sorted, read consistently. An item whose sort key
    /// is not a valid easyconfig key is logged and left out: it can start
    /// nothing.
    pub async fn pending(&self) -> Result<Vec<EasyconfigKey>, DynamoError> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("#pk = :pk")
            .projection_expression("#sk")
            .expression_attribute_names("#pk", attr::PK)
            .expression_attribute_names("#sk", attr::SK)
            .expression_attribute_values(":pk", AttributeValue::S(PENDING_PK.into()))
            .into_paginator()
            .send();
        let mut keys = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.error("Query", PENDING_PK, ALL_PENDING, e))?;
            for item in page.items() {
                let Some(AttributeValue::S(sk)) = item.get(attr::SK) else {
                    continue;
                };
                match key_from_pending_sk(sk) {
                    Ok(key) => keys.push(key),
                    Err(e) => {
                        tracing::warn!(table = %self.table, sk = ?sk, error = %e, "pending item with an invalid key, left out")
                    }
                }
            }
        }
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    /// Forget `keys` (the follow-up that plans them has started), 25 at a
    /// time, retrying what DynamoDB leaves unprocessed.
    pub async fn remove_pending(&self, keys: &[EasyconfigKey]) -> Result<(), DynamoError> {
        for chunk in keys.chunks(BATCH) {
            let mut requests: Vec<WriteRequest> = chunk.iter().map(delete_request).collect();
            let mut round = 0;
            while !requests.is_empty() {
                if round == MAX_ROUNDS {
                    return Err(self.call(CallError {
                        service: SERVICE,
                        op: "BatchWriteItem",
                        resource: self.item(PENDING_PK, ALL_PENDING),
                        detail: format!("{} deletes still unprocessed", requests.len()),
                        transient: true,
                    }));
                }
                if round > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(50 << round)).await;
                }
                round += 1;
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests)
                    .send()
                    .await
                    .map_err(|e| self.error("BatchWriteItem", PENDING_PK, ALL_PENDING, e))?;
                requests = out
                    .unprocessed_items()
                    .and_then(|u| u.get(&self.table))
                    .cloned()
                    .unwrap_or_default();
            }
        }
        Ok(())
    }
}

fn delete_request(key: &EasyconfigKey) -> WriteRequest {
    let k = HashMap::from([
        (attr::PK.to_string(), AttributeValue::S(PENDING_PK.into())),
        (attr::SK.to_string(), AttributeValue::S(pending_sk(key))),
    ]);
    WriteRequest::builder()
        .delete_request(
            DeleteRequest::builder()
                .set_key(Some(k))
                .build()
                .expect("key is set"),
        )
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::config::retry::RetryConfig;
    use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput;
    use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemOutput};
    use aws_sdk_dynamodb::operation::query::QueryOutput;
    use aws_sdk_dynamodb::types::error::ProvisionedThroughputExceededException;
    use aws_sdk_dynamodb::Client;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use aws_smithy_types::error::ErrorMetadata;

    const TABLE: &str = "ebfleet-records";
    const ZLIB: &str = "easyconfigs/z/zlib/zlib-1.3.1-GCCcore-13.3.0.eb";

    fn key(s: &str) -> EasyconfigKey {
        s.parse().unwrap()
    }

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    fn no_retries(c: aws_sdk_dynamodb::config::Builder) -> aws_sdk_dynamodb::config::Builder {
        c.retry_config(RetryConfig::disabled())
    }

    #[tokio::test]
    async fn add_pending_writes_one_item_with_a_ttl() {
        let rule = mock!(Client::put_item)
            .match_requests(|q| {
                let i = q.item().unwrap();
                q.table_name() == Some(TABLE)
                    && i.get("pk") == Some(&s("PENDING"))
                    && i.get("sk") == Some(&s(&format!("KEY#{ZLIB}")))
                    && i.get("added") == Some(&AttributeValue::N("1000".into()))
                    && i.get(TTL) == Some(&AttributeValue::N((1000 + PENDING_TTL_SECS).to_string()))
                    && q.condition_expression().is_none()
            })
            .then_output(|| PutItemOutput::builder().build());
        let client = mock_client!(aws_sdk_dynamodb, [&rule]);
        Records::new(client, TABLE)
            .add_pending(&key(ZLIB), 1000)
            .await
            .unwrap();
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn add_pending_reports_throttling_as_transient() {
        let rule = mock!(Client::put_item).then_error(|| {
            PutItemError::ProvisionedThroughputExceededException(
                ProvisionedThroughputExceededException::builder()
                    .message("slow down")
                    .meta(
                        ErrorMetadata::builder()
                            .code("ProvisionedThroughputExceededException")
                            .message("slow down")
                            .build(),
                    )
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&rule], no_retries);
        let err = Records::new(client, TABLE)
            .add_pending(&key(ZLIB), 1)
            .await
            .unwrap_err();
        assert!(err.is_retryable(), "{err}");
        assert!(err.to_string().contains("PENDING"), "{err}");
    }

    #[tokio::test]
    async fn pending_reads_every_page_and_drops_invalid_keys() {
        let other = "easyconfigs/b/bzip2/bzip2-1.0.8-GCCcore-13.3.0.eb";
        let item = |sk: &str| HashMap::from([("sk".to_string(), s(sk))]);
        let first = mock!(Client::query)
            .match_requests(|q| {
                q.consistent_read() == Some(true)
                    && q.exclusive_start_key().is_none()
                    && q.expression_attribute_values().unwrap().get(":pk") == Some(&s("PENDING"))
            })
            .then_output(move || {
                QueryOutput::builder()
                    .items(item(&format!("KEY#{ZLIB}")))
                    .items(item("KEY#easyconfigs/../../etc/passwd.eb"))
                    .last_evaluated_key("pk", s("PENDING"))
                    .last_evaluated_key("sk", s("KEY#x"))
                    .build()
            });
        let second = mock!(Client::query)
            .match_requests(|q| q.exclusive_start_key().is_some())
            .then_output(move || {
                QueryOutput::builder()
                    .items(item(&format!("KEY#{other}")))
                    .build()
            });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&first, &second]);
        let keys = Records::new(client, TABLE).pending().await.unwrap();
        assert_eq!(keys, vec![key(other), key(ZLIB)]);
        assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn remove_pending_deletes_in_batches_of_25_and_retries_unprocessed() {
        let keys: Vec<EasyconfigKey> = (0..30)
            .map(|i| key(&format!("easyconfigs/z/zlib/zlib-1.{i}.eb")))
            .collect();
        let leftover = delete_request(&keys[3]);
        let first = mock!(Client::batch_write_item)
            .match_requests(|q| q.request_items().unwrap()[TABLE].len() == 25)
            .then_output(move || {
                BatchWriteItemOutput::builder()
                    .unprocessed_items(TABLE, vec![leftover.clone()])
                    .build()
            });
        let retry = mock!(Client::batch_write_item)
            .match_requests(|q| {
                let r = &q.request_items().unwrap()[TABLE];
                r.len() == 1
                    && r[0].delete_request().unwrap().key().get("sk")
                        == Some(&s("KEY#easyconfigs/z/zlib/zlib-1.3.eb"))
            })
            .then_output(|| BatchWriteItemOutput::builder().build());
        let rest = mock!(Client::batch_write_item)
            .match_requests(|q| q.request_items().unwrap()[TABLE].len() == 5)
            .then_output(|| BatchWriteItemOutput::builder().build());
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::MatchAny,
            [&first, &retry, &rest]
        );
        Records::new(client, TABLE)
            .remove_pending(&keys)
            .await
            .unwrap();
        assert_eq!(
            (first.num_calls(), retry.num_calls(), rest.num_calls()),
            (1, 1, 1)
        );
    }
}
