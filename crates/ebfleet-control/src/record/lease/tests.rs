//! Taking and releasing a batch's leases over mocked S3 and DynamoDB: what
//! each module's record becomes, under which condition, and what the
//! leases file says.

use super::*;
use crate::failure::{Failure, Kind};
use crate::record::{handle, Input, Reply, Settings};
use crate::testing::{Mocks, BUCKET, TABLE};
use aws_sdk_dynamodb::error::ErrorMetadata;
use aws_sdk_dynamodb::operation::get_item::{GetItemError, GetItemInput, GetItemOutput};
use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemInput, PutItemOutput};
use aws_sdk_dynamodb::types::error::{
    ConditionalCheckFailedException, ProvisionedThroughputExceededException,
};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::operation::get_object::{GetObjectError, GetObjectOutput};
use aws_sdk_s3::operation::put_object::PutObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::error::NoSuchKey;
use aws_smithy_mocks::{mock, Rule};
use ebfleet_aws::dynamodb::{from_item, to_item};
use ebfleet_core::arch::Arch;
use ebfleet_core::layout::easyconfig_key;
use ebfleet_core::layout::module_sk as sk;
use ebfleet_core::record::{Lease, Status, Tarball};
use ebfleet_core::wire::BatchBuild;
use std::sync::{Arc, Mutex};

const P: &str = "amzn-2023_epyc-gen-4";
const OWNER: &str = "run-1#batch-2";
const OTHER: &str = "run-0#batch-5";
const ZLIB: &str = "zlib/1.3.1-GCCcore-13.3.0";
const BZIP2: &str = "bzip2/1.0.8-GCCcore-13.3.0";
const NOW: u64 = 1_800_000_000;
const TTL: u64 = 3_600;

fn sha(c: char) -> String {
    c.to_string().repeat(64)
}

fn m(s: &str) -> ModuleName {
    s.parse().unwrap()
}

fn batch() -> BatchRef {
    BatchRef {
        execution: "run-1".parse().unwrap(),
        platform: P.parse().unwrap(),
        batch: 2,
    }
}

/// Batch 2 of run-1 building `modules`, each from easyconfig checksum `e…`.
fn batch_file(modules: &[&str]) -> BatchFile {
    BatchFile {
        execution: "run-1".parse().unwrap(),
        platform: P.parse().unwrap(),
        arch: Arch::X86_64,
        archspec: "zen4".into(),
        optarch: "GCC:march=znver4".into(),
        cuda_compute_capability: None,
        base: None,
        batch: 2,
        builds: modules
            .iter()
            .map(|s| {
                let module = m(s);
                let easyconfig = format!(
                    "{}/{}/{}-{}.eb",
                    module.name().to_lowercase().chars().next().unwrap(),
                    module.name(),
                    module.name(),
                    module.version()
                )
                .parse()
                .unwrap();
                BatchBuild {
                    module,
                    easyconfig_key: easyconfig_key(&easyconfig),
                    easyconfig,
                    easyconfig_sha256: sha('e'),
                    memory_per_job_mib: None,
                    optarch: None,
                }
            })
            .collect(),
        needs: vec![],
        after: vec![0],
        jobs_halved: 0,
        node: None,
        signing_key: None,
    }
}

fn get_batch(file: &BatchFile) -> Rule {
    let text = serde_json::to_string(file).unwrap();
    mock!(aws_sdk_s3::Client::get_object)
        .match_requests(|q| {
            q.bucket() == Some(BUCKET) && q.key() == Some("plans/run-1/amzn-2023_epyc-gen-4/2.json")
        })
        .then_output(move || {
            GetObjectOutput::builder()
                .body(ByteStream::from(text.clone().into_bytes()))
                .build()
        })
}

/// PutObject of the leases file; what it wrote lands in `file`.
fn put_leases(file: Arc<Mutex<Option<BatchLeases>>>) -> Rule {
    mock!(aws_sdk_s3::Client::put_object)
        .match_requests(move |q| {
            let ok = q.bucket() == Some(BUCKET)
                && q.key() == Some("plans/run-1/amzn-2023_epyc-gen-4/2.leases.json")
                && q.content_type() == Some("application/json");
            if ok {
                let body = q.body().bytes().expect("an in-memory body");
                *file.lock().unwrap() = Some(serde_json::from_slice(body).unwrap());
            }
            ok
        })
        .then_output(|| PutObjectOutput::builder().build())
}

fn is_get(module: &'static str) -> impl Fn(&GetItemInput) -> bool + Send + Sync + 'static {
    move |q: &GetItemInput| {
        q.table_name() == Some(TABLE)
            && q.consistent_read() == Some(true)
            && q.key().and_then(|k| k.get("sk")) == Some(&AttributeValue::S(sk(module)))
    }
}

/// GetItem of `module` answering `record`.
fn get_record(module: &'static str, record: Option<ModuleRecord>) -> Rule {
    mock!(aws_sdk_dynamodb::Client::get_item)
        .match_requests(is_get(module))
        .then_output(move || {
            GetItemOutput::builder()
                .set_item(record.as_ref().map(to_item))
                .build()
        })
}

/// A write as the table got it: the item and its condition in short
/// (`new`, or `version N`).
type Writes = Arc<Mutex<Vec<(ModuleRecord, String)>>>;

fn condition_of(q: &PutItemInput) -> String {
    match q.condition_expression() {
        Some("attribute_not_exists(pk)") => "new".into(),
        Some("#v = :v") => match q.expression_attribute_values().and_then(|v| v.get(":v")) {
            Some(AttributeValue::N(n)) => format!("version {n}"),
            other => format!("version {other:?}"),
        },
        other => format!("{other:?}"),
    }
}

fn is_put(module: &'static str, writes: Writes) -> impl Fn(&PutItemInput) -> bool + Send + Sync {
    move |q: &PutItemInput| {
        let item = q.item().unwrap();
        let ok =
            q.table_name() == Some(TABLE) && item.get("sk") == Some(&AttributeValue::S(sk(module)));
        if ok {
            let record = from_item(item).unwrap();
            writes.lock().unwrap().push((record, condition_of(q)));
        }
        ok
    }
}

/// PutItem of `module`, always accepted.
fn put_record(module: &'static str, writes: Writes) -> Rule {
    mock!(aws_sdk_dynamodb::Client::put_item)
        .match_requests(is_put(module, writes))
        .then_output(|| PutItemOutput::builder().build())
}

fn condition_failed() -> PutItemError {
    PutItemError::ConditionalCheckFailedException(
        ConditionalCheckFailedException::builder()
            .message("The conditional request failed")
            .build(),
    )
}

fn record(module: &str, status: Status, lease: Option<(&str, u64)>, version: u64) -> ModuleRecord {
    let mut r = ModuleRecord::new(P, module, &sha('e'), NOW - 10_000);
    r.status = status;
    r.lease = lease.map(|(owner, expires)| Lease {
        owner: owner.into(),
        expires,
    });
    r.version = version;
    if status == Status::Built {
        r.tarball = Some(Tarball {
            key: format!("{P}/software/{module}.tar.zst"),
            size: 10,
            sha256: sha('b'),
            version_id: None,
            signature: None,
        });
    }
    r
}

struct Run {
    result: Result<Output, Error>,
    writes: Vec<(ModuleRecord, String)>,
    file: Option<BatchLeases>,
}

/// Take the leases of a batch of `modules` over `dynamodb`'s rules (built
/// with the `writes` they record).
async fn take_with(modules: &[&str], dynamodb: &[&Rule], writes: Writes) -> Run {
    take_file(batch_file(modules), dynamodb, writes, false).await
}

/// Take the leases of batch `file`, waiting for others' leases if `may_wait`.
async fn take_file(file: BatchFile, dynamodb: &[&Rule], writes: Writes, may_wait: bool) -> Run {
    let leases = Arc::new(Mutex::new(None));
    let (get, put) = (get_batch(&file), put_leases(leases.clone()));
    let mocks = Mocks {
        s3: vec![&get, &put],
        dynamodb: dynamodb.to_vec(),
        ..Default::default()
    };
    let result = take(&mocks.env(), &batch(), NOW, TTL, may_wait).await;
    let file = leases;
    let writes = writes.lock().unwrap().clone();
    let file = file.lock().unwrap().clone();
    Run {
        result,
        writes,
        file,
    }
}

/// One module whose record reads `existing`; writes to it are accepted.
async fn take_one(existing: Option<ModuleRecord>) -> Run {
    let writes = Writes::default();
    let (get, put) = (get_record(ZLIB, existing), put_record(ZLIB, writes.clone()));
    take_with(&[ZLIB], &[&get, &put], writes).await
}

fn counts(o: &Output) -> (usize, usize, usize) {
    (o.leased, o.held, o.already_built)
}

#[tokio::test]
async fn a_fresh_module_is_leased_to_the_batch() {
    let r = take_one(None).await;
    let out = r.result.unwrap();
    assert_eq!(
        out,
        Output {
            leases_key: "plans/run-1/amzn-2023_epyc-gen-4/2.leases.json".into(),
            leased: 1,
            held: 0,
            already_built: 0,
            waiting: 0,
            held_until: None,
        }
    );
    assert_eq!(r.writes.len(), 1);
    let (written, condition) = &r.writes[0];
    assert_eq!(condition, "new");
    assert_eq!(written.status, Status::Building);
    assert_eq!(written.easyconfig_sha256, sha('e'));
    assert_eq!(
        written.lease,
        Some(Lease {
            owner: OWNER.into(),
            expires: NOW + TTL
        })
    );
    assert_eq!(written.version, 1);
    let file = r.file.unwrap();
    assert_eq!(file.owner, OWNER);
    assert_eq!(file.expires, NOW + TTL);
    assert_eq!(file.leased, [m(ZLIB)]);
    assert!(file.held.is_empty() && file.already_built.is_empty());
    assert_eq!(file.skip_reason(&m(ZLIB)), None);
}

#[tokio::test]
async fn another_owners_live_lease_is_held() {
    let theirs = record(ZLIB, Status::Building, Some((OTHER, NOW + 60)), 3);
    let r = take_one(Some(theirs)).await;
    let out = r.result.unwrap();
    assert_eq!(counts(&out), (0, 1, 0));
    assert_eq!(
        out.held_until,
        Some(NOW + 60),
        "the scheduler tries again then"
    );
    assert!(r.writes.is_empty(), "their record is left alone");
    let file = r.file.unwrap();
    assert_eq!(
        file.held,
        [HeldModule {
            module: m(ZLIB),
            owner: OTHER.into(),
            expires: NOW + 60
        }]
    );
    assert!(file.skip_reason(&m(ZLIB)).unwrap().contains(OTHER));
}

#[tokio::test]
async fn while_waits_are_left_a_module_held_elsewhere_is_waited_for() {
    let writes = Writes::default();
    let theirs = record(ZLIB, Status::Building, Some((OTHER, NOW + 60)), 3);
    let (get, put) = (
        get_record(ZLIB, Some(theirs)),
        put_record(ZLIB, writes.clone()),
    );
    let free = (get_record(BZIP2, None), put_record(BZIP2, writes.clone()));
    let dynamodb = [&get, &put, &free.0, &free.1];
    let r = take_file(batch_file(&[BZIP2, ZLIB]), &dynamodb, writes, true).await;
    let out = r.result.unwrap();
    assert_eq!((out.waiting, counts(&out)), (1, (0, 0, 0)));
    assert!(
        r.writes.is_empty(),
        "nothing is leased while waiting, not even the free module"
    );
    assert!(r.file.is_none(), "no leases file while waiting");
}

#[tokio::test]
async fn while_waits_are_left_a_need_another_run_is_building_is_waited_for() {
    let mut file = batch_file(&[ZLIB]);
    let need = m(BZIP2);
    let platform: PlatformName = P.parse().unwrap();
    file.needs = vec![ebfleet_core::wire::BatchNeed {
        tarball_key: ebfleet_core::layout::tarball_key(&platform, &need),
        module_file_key: ebfleet_core::layout::module_file_key(&platform, &need),
        tarball_sha256: None,
        from_base: false,
        module: need,
    }];
    let writes = Writes::default();
    let building = record(BZIP2, Status::Building, Some((OTHER, NOW + 60)), 2);
    let rules = (
        get_record(BZIP2, Some(building)),
        get_record(ZLIB, None),
        put_record(ZLIB, writes.clone()),
    );
    let r = take_file(
        file.clone(),
        &[&rules.0, &rules.1, &rules.2],
        writes.clone(),
        true,
    )
    .await;
    assert_eq!(r.result.unwrap().waiting, 1);
    assert!(r.writes.is_empty() && r.file.is_none());
    // Out of waits: the batch takes what is free and its node skips the rest.
    let r = take_file(file, &[&rules.0, &rules.1, &rules.2], writes, false).await;
    let out = r.result.unwrap();
    assert_eq!((out.waiting, counts(&out)), (0, (1, 0, 0)));
    assert_eq!(r.file.unwrap().leased, [m(ZLIB)]);
}

#[tokio::test]
async fn a_need_already_built_or_free_is_not_waited_for() {
    let writes = Writes::default();
    // Built from the same easyconfig, still under its builder's lease.
    let built = record(ZLIB, Status::Built, Some((OTHER, NOW + 60)), 2);
    let (get, put) = (
        get_record(ZLIB, Some(built)),
        put_record(ZLIB, writes.clone()),
    );
    let r = take_file(batch_file(&[ZLIB]), &[&get, &put], writes, true).await;
    let out = r.result.unwrap();
    assert_eq!((out.waiting, counts(&out)), (0, (0, 0, 1)));
    assert!(r.file.is_some());
}

#[tokio::test]
async fn an_expired_lease_is_taken_over() {
    let dead = record(ZLIB, Status::Building, Some((OTHER, NOW)), 4);
    let r = take_one(Some(dead)).await;
    assert_eq!(counts(&r.result.unwrap()), (1, 0, 0));
    let (written, condition) = &r.writes[0];
    assert_eq!(condition, "version 4");
    assert_eq!(written.lease.as_ref().unwrap().owner, OWNER);
    assert_eq!(written.version, 5);
    assert_eq!(r.file.unwrap().leased, [m(ZLIB)]);
}

#[tokio::test]
async fn the_batchs_own_lease_is_taken_again_on_new_capacity() {
    let mine = record(ZLIB, Status::Building, Some((OWNER, NOW + 5)), 1);
    let r = take_one(Some(mine)).await;
    assert_eq!(counts(&r.result.unwrap()), (1, 0, 0));
    let (written, condition) = &r.writes[0];
    assert_eq!(condition, "version 1");
    assert_eq!(written.lease.as_ref().unwrap().expires, NOW + TTL);
}

#[tokio::test]
async fn a_module_built_from_the_same_easyconfig_is_already_built() {
    let built = record(ZLIB, Status::Built, None, 2);
    let r = take_one(Some(built)).await;
    assert_eq!(counts(&r.result.unwrap()), (0, 0, 1));
    assert!(r.writes.is_empty());
    let file = r.file.unwrap();
    assert_eq!(file.already_built, [m(ZLIB)]);
    assert!(file.leased.is_empty());
}

#[tokio::test]
async fn a_batch_of_several_modules_is_decided_module_by_module() {
    let writes = Writes::default();
    let rules = [
        get_record(ZLIB, None),
        put_record(ZLIB, writes.clone()),
        get_record(
            BZIP2,
            Some(record(BZIP2, Status::Building, Some((OTHER, NOW + 1)), 1)),
        ),
    ];
    let r = take_with(&[ZLIB, BZIP2], &rules.iter().collect::<Vec<_>>(), writes).await;
    assert_eq!(counts(&r.result.unwrap()), (1, 1, 0));
    let file = r.file.unwrap();
    assert_eq!(file.leased, [m(ZLIB)]);
    assert_eq!(file.held[0].module, m(BZIP2));
}

#[tokio::test]
async fn a_failed_condition_is_read_and_decided_again() {
    // Between our read and our write, another batch recorded a failure.
    let theirs = {
        let mut r = record(ZLIB, Status::Failed, None, 1);
        r.attempts = 1;
        r
    };
    let get = mock!(aws_sdk_dynamodb::Client::get_item)
        .match_requests(is_get(ZLIB))
        .sequence()
        .output(|| GetItemOutput::builder().build())
        .output(move || {
            GetItemOutput::builder()
                .set_item(Some(to_item(&theirs)))
                .build()
        })
        .build();
    let writes = Writes::default();
    let put = mock!(aws_sdk_dynamodb::Client::put_item)
        .match_requests(is_put(ZLIB, writes.clone()))
        .sequence()
        .error(condition_failed)
        .output(|| PutItemOutput::builder().build())
        .build();
    let r = take_with(&[ZLIB], &[&get, &put], writes).await;
    assert_eq!(counts(&r.result.unwrap()), (1, 0, 0));
    assert_eq!((get.num_calls(), put.num_calls()), (2, 2));
    let conditions: Vec<&str> = r.writes.iter().map(|(_, c)| c.as_str()).collect();
    assert_eq!(conditions, ["new", "version 1"]);
    let (written, _) = &r.writes[1];
    assert_eq!((written.status, written.attempts), (Status::Building, 1));
    assert_eq!(written.lease.as_ref().unwrap().owner, OWNER);
}

#[tokio::test]
async fn a_condition_failing_every_time_gives_up_as_transient() {
    let writes = Writes::default();
    let get = get_record(ZLIB, None);
    let put = mock!(aws_sdk_dynamodb::Client::put_item)
        .match_requests(is_put(ZLIB, writes.clone()))
        .then_error(condition_failed);
    let r = take_with(&[ZLIB], &[&get, &put], writes).await;
    let e = r.result.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Contended {
                attempts: MAX_ATTEMPTS,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.kind(), Kind::Transient);
    assert!(e.to_string().starts_with(&format!("leasing {ZLIB}")), "{e}");
    assert_eq!(put.num_calls() as u32, MAX_ATTEMPTS);
    assert!(r.file.is_none(), "no leases file without every decision");
}

#[tokio::test]
async fn throttling_is_a_transient_error() {
    let get = mock!(aws_sdk_dynamodb::Client::get_item)
        .match_requests(is_get(ZLIB))
        .then_error(|| {
            let message = "Rate of requests exceeds the allowed throughput";
            GetItemError::ProvisionedThroughputExceededException(
                ProvisionedThroughputExceededException::builder()
                    .message(message)
                    .meta(
                        ErrorMetadata::builder()
                            .code("ProvisionedThroughputExceededException")
                            .message(message)
                            .build(),
                    )
                    .build(),
            )
        });
    let r = take_with(&[ZLIB], &[&get], Writes::default()).await;
    let e = r.result.unwrap_err();
    assert_eq!(e.kind(), Kind::Transient, "{e}");
    assert_eq!(e.kind().error_type(), "ebfleet.Transient");
    assert!(e.to_string().contains(ZLIB), "{e}");
    assert!(r.file.is_none());
}

#[tokio::test]
async fn a_missing_batch_file_is_an_error_naming_its_key() {
    let get = mock!(aws_sdk_s3::Client::get_object)
        .then_error(|| GetObjectError::NoSuchKey(NoSuchKey::builder().build()));
    let mocks = Mocks {
        s3: vec![&get],
        ..Default::default()
    };
    let e = take(&mocks.env(), &batch(), NOW, TTL, false)
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with("reading batch file plans/run-1/amzn-2023_epyc-gen-4/2.json: "),
        "{text}"
    );
    assert!(text.contains("no such key"), "{text}");
    assert_eq!(e.kind(), Kind::Failed);
}

#[tokio::test]
async fn a_batch_file_of_another_batch_is_refused() {
    let mut other = batch_file(&[ZLIB]);
    other.batch = 3;
    let text = serde_json::to_string(&other).unwrap();
    let get = mock!(aws_sdk_s3::Client::get_object).then_output(move || {
        GetObjectOutput::builder()
            .body(ByteStream::from(text.clone().into_bytes()))
            .build()
    });
    let mocks = Mocks {
        s3: vec![&get],
        ..Default::default()
    };
    let e = take(&mocks.env(), &batch(), NOW, TTL, false)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), Kind::Invalid, "{e}");
    assert!(e.to_string().contains("it is batch 3"), "{e}");
}

#[tokio::test]
async fn the_handler_answers_the_lease_state_with_counts() {
    let writes = Writes::default();
    let file = Arc::new(Mutex::new(None));
    let (get, put) = (get_batch(&batch_file(&[ZLIB])), put_leases(file.clone()));
    let (read, write) = (get_record(ZLIB, None), put_record(ZLIB, writes.clone()));
    let mocks = Mocks {
        s3: vec![&get, &put],
        dynamodb: vec![&read, &write],
        ..Default::default()
    };
    let input: Input = serde_json::from_value(serde_json::json!(
        {"lease": {"execution": "run-1", "platform": P, "batch": 2, "waits_left": 3}}
    ))
    .unwrap();
    let settings = settings();
    let reply = handle(&mocks.env(), &settings, input).await.unwrap();
    assert!(matches!(reply, Reply::Leased(_)));
    assert_eq!(
        serde_json::to_value(&reply).unwrap(),
        serde_json::json!({
            "leases_key": "plans/run-1/amzn-2023_epyc-gen-4/2.leases.json",
            "leased": 1, "held": 0, "already_built": 0, "waiting": 0
        })
    );
    let lease = writes.lock().unwrap()[0].0.lease.clone().unwrap();
    assert!(lease.expires >= lease_expiry_floor(), "{lease:?}");
}

/// The earliest expiry a lease taken now with the default TTL can have.
fn lease_expiry_floor() -> u64 {
    ebfleet_core::clock::unix_now() + default_ttl() - 60
}

#[test]
fn the_ttl_is_two_hours_unless_set() {
    assert_eq!(default_ttl(), 2 * 3600);
    assert_eq!(parse_ttl(None).unwrap(), default_ttl());
    assert_eq!(parse_ttl(Some(" ")).unwrap(), default_ttl());
    assert_eq!(parse_ttl(Some("7200")).unwrap(), 7200);
    for bad in ["0", "-5", "1h", "1e9"] {
        let e = parse_ttl(Some(bad)).unwrap_err();
        assert_eq!(e.kind(), Kind::Invalid);
        assert!(e.to_string().contains(LEASE_SECONDS_VAR), "{e}");
    }
}

#[tokio::test]
async fn releasing_gives_up_only_the_batchs_own_leases() {
    let writes = Writes::default();
    let rules = [
        get_record(
            ZLIB,
            Some(record(ZLIB, Status::Building, Some((OWNER, NOW + 60)), 2)),
        ),
        put_record(ZLIB, writes.clone()),
        get_record(
            BZIP2,
            Some(record(BZIP2, Status::Building, Some((OTHER, NOW + 60)), 7)),
        ),
        get_record("xz/5.4.5-GCCcore-13.3.0", None),
    ];
    let get = get_batch(&batch_file(&[ZLIB, BZIP2, "xz/5.4.5-GCCcore-13.3.0"]));
    let mocks = Mocks {
        s3: vec![&get],
        dynamodb: rules.iter().collect(),
        ..Default::default()
    };
    let out = release(&mocks.env(), &batch(), NOW).await.unwrap();
    assert_eq!(
        out,
        ReleaseOutput {
            released: 1,
            not_held: 2
        }
    );
    let writes = writes.lock().unwrap();
    let (written, condition) = &writes[0];
    assert_eq!(condition, "version 2");
    assert_eq!(
        (written.status, written.lease.clone()),
        (Status::Failed, None)
    );
    let error = written.last_error.clone().unwrap();
    assert_eq!(error.class, ebfleet_core::record::ErrorClass::NodeLost);
    assert!(
        error.message.contains("batch 2 of run-1"),
        "{}",
        error.message
    );
    assert_eq!(
        (written.execution.as_deref(), written.batch),
        (Some("run-1"), Some(2))
    );
}

/// Where batch 2's node (`NODE`) stages what it built.
const STAGING: &str = "staging/amzn-2023_epyc-gen-4/run-1/2/AROATEST:i-0a/";
const NODE: &str = "AROATEST:i-0a";
const SIGNING_KEY: &str = "alias/ebfleet-signing";
/// What the node staged as its tarball.
const TARBALL: &[u8] = b"0123456789";

/// The node's manifest of batch 2 saying `module` was built, at the
/// unit's staged keys for `keys_of`.
fn manifest_of(module: &str, keys_of: &str) -> String {
    let k = m(keys_of);
    serde_json::to_string(&ebfleet_core::manifest::BatchManifest {
        format: ebfleet_core::manifest::MANIFEST_FORMAT,
        execution: "run-1".into(),
        platform: P.into(),
        batch: 2,
        instance_type: "c7a.8xlarge".into(),
        archspec: "zen4".into(),
        eb_version: "5.4.1".into(),
        started: NOW,
        finished: NOW + 60,
        modules: vec![ebfleet_core::manifest::ManifestEntry {
            module: module.into(),
            easyconfig_sha256: sha('e'),
            outcome: ebfleet_core::manifest::Outcome::Built {
                tarball: Tarball {
                    key: ebfleet_core::layout::tarball_key_under(STAGING, &k),
                    size: TARBALL.len() as u64,
                    sha256: ebfleet_core::checksum::sha256_hex(TARBALL),
                    version_id: None,
                    signature: None,
                },
                module_file_key: ebfleet_core::layout::module_file_key_under(STAGING, &k),
                duration_s: 60,
                usage: None,
            },
        }],
    })
    .unwrap()
}

/// GetObject of `key` answering `body`.
fn get_staged(key: String, body: &'static [u8]) -> Rule {
    mock!(aws_sdk_s3::Client::get_object)
        .match_requests(move |q| q.key() == Some(key.as_str()))
        .then_output(move || {
            GetObjectOutput::builder()
                .content_length(body.len() as i64)
                .version_id("v1")
                .body(ByteStream::from_static(body))
                .build()
        })
}

#[tokio::test]
async fn a_manifest_is_recorded_only_for_what_its_unit_builds() {
    use aws_sdk_s3::operation::copy_object::CopyObjectOutput;
    use aws_sdk_s3::operation::head_object::{HeadObjectError, HeadObjectOutput};
    use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
    use aws_sdk_s3::types::error::NotFound;
    let run = |manifest: String| async move {
        let writes = Writes::default();
        let mut file = batch_file(&[ZLIB]);
        file.node = Some(NODE.into());
        let unit = get_batch(&file);
        let read_manifest = mock!(aws_sdk_s3::Client::get_object)
            .match_requests(|q| q.key() == Some(&format!("{STAGING}manifest.json")))
            .then_output(move || {
                GetObjectOutput::builder()
                    .body(ByteStream::from(manifest.clone().into_bytes()))
                    .build()
            });
        let zlib = m(ZLIB);
        let staged_tarball = get_staged(
            ebfleet_core::layout::tarball_key_under(STAGING, &zlib),
            TARBALL,
        );
        let file_key = ebfleet_core::layout::module_file_key_under(STAGING, &zlib);
        let staged_file = get_staged(file_key.clone(), b"-- lua");
        let head_file = mock!(aws_sdk_s3::Client::head_object)
            .match_requests(move |q| q.key() == Some(file_key.as_str()))
            .then_output(|| HeadObjectOutput::builder().content_length(6).build());
        let head_promoted = mock!(aws_sdk_s3::Client::head_object)
            .then_error(|| HeadObjectError::NotFound(NotFound::builder().build()));
        // The tarball's copy carries the key's signature of its key and
        // digest; its module file's none.
        let statement = ebfleet_core::record::tarball_statement(
            "amzn-2023_epyc-gen-4/software/zlib/1.3.1-GCCcore-13.3.0.tar.zst",
            &ebfleet_core::checksum::sha256_hex(TARBALL),
        );
        let sign = mock!(aws_sdk_kms::Client::sign)
            .match_requests(move |q| {
                q.key_id() == Some(SIGNING_KEY)
                    && q.message().map(|m| m.as_ref()) == Some(statement.as_slice())
            })
            .then_output(|| {
                aws_sdk_kms::operation::sign::SignOutput::builder()
                    .signature(aws_sdk_kms::primitives::Blob::new(b"sig".to_vec()))
                    .build()
            });
        let copy = mock!(aws_sdk_s3::Client::copy_object)
            .match_requests(|q| {
                let signed = q.metadata().and_then(|m| m.get("signature"));
                let tarball = q.key().is_some_and(|k| k.ends_with(".tar.zst"));
                q.copy_source()
                    .is_some_and(|c| c.ends_with("?versionId=v1"))
                    && signed.map(String::as_str) == tarball.then_some("c2ln")
            })
            .then_output(|| CopyObjectOutput::builder().version_id("v2").build());
        let logs = mock!(aws_sdk_s3::Client::list_objects_v2)
            .then_output(|| ListObjectsV2Output::builder().build());
        let publish = mock!(aws_sdk_s3::Client::put_object)
            .match_requests(|q| q.key() == Some("amzn-2023_epyc-gen-4/manifests/run-1/2.json"))
            .then_output(|| PutObjectOutput::builder().build());
        let (read, write) = (get_record(ZLIB, None), put_record(ZLIB, writes.clone()));
        let (read_b, write_b) = (get_record(BZIP2, None), put_record(BZIP2, writes.clone()));
        let mocks = Mocks {
            s3: vec![
                &read_manifest,
                &unit,
                &staged_tarball,
                &head_file,
                &staged_file,
                &head_promoted,
                &copy,
                &logs,
                &publish,
            ],
            dynamodb: vec![&read, &write, &read_b, &write_b],
            kms: vec![&sign],
            ..Default::default()
        };
        let input: Input = serde_json::from_value(serde_json::json!({
            "staged": {"execution": "run-1", "platform": P, "batch": 2}
        }))
        .unwrap();
        let settings = settings();
        let reply = handle(&mocks.env(), &settings, input).await;
        let written = writes.lock().unwrap().clone();
        (reply, written, copy.num_calls())
    };
    let (reply, written, copies) = run(manifest_of(ZLIB, ZLIB)).await;
    assert!(reply.is_ok(), "{reply:?}");
    assert_eq!(written.len(), 1, "its own module is recorded");
    assert_eq!(copies, 2, "its tarball and module file promoted");
    let tarball = written[0].0.tarball.clone().expect("built");
    assert_eq!(
        (
            tarball.key.as_str(),
            tarball.version_id.as_deref(),
            tarball.signature.as_deref()
        ),
        (
            "amzn-2023_epyc-gen-4/software/zlib/1.3.1-GCCcore-13.3.0.tar.zst",
            Some("v2"),
            Some("c2ln")
        )
    );
    // Another module than the unit's, or its own at another's keys.
    for manifest in [manifest_of(BZIP2, BZIP2), manifest_of(ZLIB, BZIP2)] {
        let (reply, written, copies) = run(manifest).await;
        let err = reply.expect_err("refused");
        assert_eq!(err.kind(), Kind::Invalid, "{err}");
        assert_eq!((written.len(), copies), (0, 0), "nothing recorded: {err}");
    }
}

/// The record Lambda's settings: the default lease, `SIGNING_KEY`.
fn settings() -> Settings {
    Settings::from_lookup(crate::testing::lookup(&[(
        crate::env::var::SIGNING_KEY,
        SIGNING_KEY,
    )]))
    .unwrap()
}
