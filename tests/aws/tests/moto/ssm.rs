use ebfleet_aws::ssm::Ssm;
use ebfleet_core::capacity::AmiSource;

#[tokio::test]
async fn ssm_resolves_public_al2023_amis() {
    let Some(conf) = super::config("ssm_resolves_public_al2023_amis").await else {
        return;
    };
    let ssm = Ssm::from_conf(&conf);
    for arch in ["x86_64", "arm64"] {
        let param =
            format!("/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-{arch}");
        let id = ssm.ami_id(&AmiSource::SsmParameter(param)).await.unwrap();
        assert!(id.starts_with("ami-"), "{arch}: {id}");
    }
    let pinned = ssm
        .ami_id(&AmiSource::Pinned("ami-0123456789abcdef0".into()))
        .await
        .unwrap();
    assert_eq!(pinned, "ami-0123456789abcdef0");
}
