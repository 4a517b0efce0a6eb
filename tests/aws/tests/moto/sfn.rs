use ebfleet_aws::sfn::{SfnError, StepFunctions};
use ebfleet_core::names::ExecutionName;

#[tokio::test]
async fn sfn_start_twice_and_running() {
    let Some(conf) = super::config("sfn_start_twice_and_running").await else {
        return;
    };
    let created = aws_sdk_sfn::Client::new(&conf)
        .create_state_machine()
        .name(super::unique("ebfleet-sm"))
        .definition(r#"{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}"#)
        .role_arn("arn:aws:iam::123456789012:role/ebfleet-sfn")
        .send()
        .await
        .unwrap();
    let sm = created.state_machine_arn();
    let sfn = StepFunctions::from_conf(&conf);
    let name: ExecutionName = "run-1".parse().unwrap();
    let arn = sfn
        .start(sm, &name, &serde_json::json!({"x": 1}))
        .await
        .unwrap();
    assert!(arn.ends_with(":run-1"), "{arn}");
    // Same name and input while it runs: idempotent, the same execution
    // (as Step Functions documents it).
    assert_eq!(
        sfn.start(sm, &name, &serde_json::json!({"x": 1}))
            .await
            .unwrap(),
        arn
    );
    match sfn.start(sm, &name, &serde_json::json!({"x": 2})).await {
        Err(SfnError::AlreadyExists {
            state_machine,
            name: n,
        }) => {
            assert_eq!((state_machine.as_str(), n.as_str()), (sm, "run-1"));
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    // moto (without `execute_state_machine`) leaves executions RUNNING.
    assert_eq!(sfn.running(sm).await.unwrap(), vec![arn]);
}
