//! The project's SSM Command document, the other half of the contract
//! [`StepCommand::parameters`](super::StepCommand::parameters) keeps (see
//! the `step` module documentation).

use super::{param, Step, NODE_PROGRAM};

/// The step's exit code when the node's bootstrap failed or never installed
/// the agent (EX_SOFTWARE).
pub const BOOTSTRAP_FAILED: u8 = 70;

/// The project's SSM Command document (schema 2.2) as JSON, for
/// `AWS::SSM::Document` in the template. The `step` module documentation
/// says what it promises.
pub fn ssm_document() -> serde_json::Value {
    let env = |pattern: &str, description: &str| {
        serde_json::json!({
            "type": "String",
            "description": description,
            "interpolationType": "ENV_VAR",
            "allowedPattern": pattern,
        })
    };
    let steps: Vec<&str> = Step::ALL.iter().map(|s| s.as_str()).collect();
    let script = format!(
        r#"exec {NODE_PROGRAM} "$SSM_{s}" --bucket "$SSM_{b}" --batch "$SSM_{k}" --execution "$SSM_{e}" --platform "$SSM_{p}""#,
        s = param::STEP,
        b = param::BUCKET,
        k = param::BATCH_KEY,
        e = param::EXECUTION,
        p = param::PLATFORM,
    );
    let guard = [
        param::STEP,
        param::BUCKET,
        param::BATCH_KEY,
        param::EXECUTION,
        param::PLATFORM,
    ]
    .map(|p| {
        format!(
            r#": "${{SSM_{p}:?SSM Agent 3.3.2746.0 or later is required (ENV_VAR parameters)}}""#
        )
    });
    let mut run: Vec<String> = vec!["set -euo pipefail".into()];
    run.extend(guard);
    // SSM reports the node managed as soon as its agent starts, which is
    // before the first-boot user data (bootstrap.sh) has installed
    // EasyBuild and the agent: the first step waits for it to finish.
    // `cloud-init status --wait` exits 1 when a user-data script failed, 2
    // ("degraded", cloud-init 23.4+) for warnings that do not matter here.
    run.push(format!(
        "if command -v cloud-init >/dev/null 2>&1; then rc=0; cloud-init status --wait >/dev/null || rc=$?; \
         if [ \"$rc\" -ne 0 ] && [ \"$rc\" -ne 2 ]; then echo \"ebfleet: the node's first-boot bootstrap failed (see /var/log/cloud-init-output.log)\" >&2; exit {BOOTSTRAP_FAILED}; fi; fi"
    ));
    run.push(format!(
        "[ -x {NODE_PROGRAM} ] || {{ echo \"ebfleet: {NODE_PROGRAM} is not installed: the node's bootstrap did not finish\" >&2; exit {BOOTSTRAP_FAILED}; }}"
    ));
    // The token goes to the node in its environment, not on its command
    // line (where `ps` would show it); empty when Step Functions does not
    // wait for the step.
    run.push(format!(
        r#"if [ -n "${{SSM_{t}:-}}" ]; then export EBFLEET_TASK_TOKEN="$SSM_{t}"; fi"#,
        t = param::TASK_TOKEN
    ));
    run.push(script);
    serde_json::json!({
        "schemaVersion": "2.2",
        "description": "ebfleet: run one step of a batch on a build node (ebfleet-node <step> --bucket B --batch KEY ...). Parameters arrive as environment variables, never as shell text.",
        "parameters": {
            (param::STEP): {
                "type": "String",
                "description": "sync, build, tar or upload",
                "interpolationType": "ENV_VAR",
                "allowedValues": steps,
            },
            (param::BUCKET): env("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", "S3 bucket"),
            (param::BATCH_KEY): env(
                "^plans/[A-Za-z0-9_][A-Za-z0-9_-]{0,79}/[a-z0-9][a-z0-9._-]{0,127}/(0|[1-9][0-9]{0,8})\\.json$",
                "plans/<execution>/<platform>/<batch>.json",
            ),
            (param::EXECUTION): env("^[A-Za-z0-9_][A-Za-z0-9_-]{0,79}$", "execution name"),
            (param::PLATFORM): env("^[a-z0-9][a-z0-9._-]{0,127}$", "platform, <os>_<cpu>[_<gpu>]"),
            (param::EXECUTION_TIMEOUT): {
                "type": "String",
                "description": "seconds the step may run",
                "default": "3600",
                "allowedPattern": "^[1-9][0-9]{0,5}$",
            },
            (param::TASK_TOKEN): {
                "type": "String",
                "description": "the Step Functions task the node completes when the step ends (empty: none)",
                "default": "",
                "interpolationType": "ENV_VAR",
                "allowedPattern": "^[A-Za-z0-9+/=_.-]{0,2048}$",
            },
        },
        "mainSteps": [{
            "action": "aws:runShellScript",
            "name": "ebfleetNode",
            "precondition": {"StringEquals": ["platformType", "Linux"]},
            "inputs": {
                "timeoutSeconds": format!("{{{{ {} }}}}", param::EXECUTION_TIMEOUT),
                "runCommand": run,
            },
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::StepCommand;

    fn command(step: Step) -> StepCommand {
        StepCommand::parse(
            step.as_str(),
            "ebfleet-builds",
            "plans/run-2026-11-24/amzn-2023_graviton-3/7.json",
        )
        .unwrap()
    }

    #[test]
    fn the_document_takes_exactly_the_parameters_and_never_interpolates_them() {
        let doc = ssm_document();
        assert_eq!(doc["schemaVersion"], "2.2");
        // Sorted: serde_json keeps insertion order when another crate of the
        // workspace enables its `preserve_order` feature.
        let mut declared: Vec<&String> = doc["parameters"].as_object().unwrap().keys().collect();
        declared.sort();
        let sent = command(Step::Tar).parameters();
        assert_eq!(declared, sent.keys().collect::<Vec<_>>());
        for (name, spec) in doc["parameters"].as_object().unwrap() {
            assert_eq!(spec["type"], "String", "{name}");
            assert!(
                spec.get("allowedPattern").is_some() || spec.get("allowedValues").is_some(),
                "{name} has no pattern"
            );
            if name != param::EXECUTION_TIMEOUT {
                assert_eq!(spec["interpolationType"], "ENV_VAR", "{name}");
            }
        }
        assert_eq!(
            doc["parameters"]["step"]["allowedValues"],
            serde_json::json!(["sync", "build", "tar", "upload"])
        );
        let plugin = &doc["mainSteps"][0];
        assert_eq!(plugin["action"], "aws:runShellScript");
        assert_eq!(plugin["inputs"]["timeoutSeconds"], "{{ executionTimeout }}");
        let run: Vec<&str> = plugin["inputs"]["runCommand"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap())
            .collect();
        assert!(run.iter().all(|l| !l.contains("{{")), "{run:?}");
        assert!(run
            .iter()
            .all(|l| !l.contains("sh -c") && !l.contains("eval")));
        // The bootstrap is waited for, and the agent checked, before it runs.
        let n = run.len();
        assert!(run[n - 4].contains("cloud-init status --wait"), "{run:?}");
        assert!(
            run[n - 3].starts_with(&format!("[ -x {NODE_PROGRAM} ] ||")),
            "{run:?}"
        );
        // The task token goes to the agent's environment, quoted, never
        // on its command line.
        assert_eq!(
            run[n - 2],
            r#"if [ -n "${SSM_taskToken:-}" ]; then export EBFLEET_TASK_TOKEN="$SSM_taskToken"; fi"#
        );
        assert!(!run[n - 1].contains("taskToken"));
        let last = run.last().unwrap();
        assert_eq!(
            *last,
            format!(
                "exec {NODE_PROGRAM} \"$SSM_step\" --bucket \"$SSM_bucket\" --batch \"$SSM_batchKey\" --execution \"$SSM_execution\" --platform \"$SSM_platform\""
            )
        );
        // Every expansion is double-quoted: no bare $SSM_ in the script.
        for line in &run {
            let bare = line.replace("\"$SSM_", "").replace("${SSM_", "");
            assert!(!bare.contains("$SSM_"), "{line}");
        }
    }
}
