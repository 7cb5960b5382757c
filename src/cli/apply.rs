//! `apply -f FILE|DIR|-`: validate every policy first, then write each onto its service's
//! `io.swarmpilot.policy` label at the version read, like `kubectl apply`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;

use super::files::load_policies;
use super::label_write::{change_labels, LabelChange, Outcome};
use super::{block_on, Output};
use crate::policy::labels::{self, POLICY, SHORTHAND};
use crate::policy::{compose, Diagnostic, ScalingPolicy};
use crate::swarm::{DockerSwarm, ServiceInfo, Swarm, SwarmResult};

/// Arguments of `swarmpilot apply`: the same `-f FILE|DIR|-` inputs as `validate`.
pub use super::validate::Args;

/// One policy and the file it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadedPolicy {
    pub source: String,
    pub policy: ScalingPolicy,
}

/// What applying one policy did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    Configured,
    /// The service already carried this policy.
    Unchanged,
}

impl Applied {
    fn as_str(self) -> &'static str {
        match self {
            Applied::Configured => "configured",
            Applied::Unchanged => "unchanged",
        }
    }
}

/// Writes `policy` onto its target service. Shorthand labels are removed in the same write:
/// the applied document replaces whatever policy the service declared before.
pub async fn apply_policy<S: Swarm>(swarm: &S, policy: &ScalingPolicy) -> SwarmResult<Applied> {
    Ok(apply_to_service(swarm, policy).await?.0)
}

/// [`apply_policy`], with the service as read.
async fn apply_to_service<S: Swarm>(
    swarm: &S,
    policy: &ScalingPolicy,
) -> SwarmResult<(Applied, ServiceInfo)> {
    let value = labels::encode(policy);
    let outcome = change_labels(swarm, policy.service(), |service| {
        let shorthand: Vec<String> = SHORTHAND
            .iter()
            .filter(|label| service.labels.contains_key(**label))
            .map(|label| label.to_string())
            .collect();
        let current = labels::decode(&service.name, &service.labels)
            .ok()
            .flatten();
        if shorthand.is_empty() && current.as_ref() == Some(policy) {
            return None;
        }
        Some(LabelChange {
            set: BTreeMap::from([(POLICY.to_owned(), value.clone())]),
            remove: shorthand,
        })
    })
    .await?;
    Ok(match outcome {
        Outcome::Changed(service) => (Applied::Configured, service),
        Outcome::Unchanged(service) => (Applied::Unchanged, service),
    })
}

/// For a service of a stack: the next `docker stack deploy` replaces its labels with the stack
/// file's, so the label just written lasts only until then. The warning gives the file's
/// `deploy.labels` that keep it.
fn stack_warning(service: &ServiceInfo, policy: &ScalingPolicy) -> Option<String> {
    let stack = service.stack.as_deref()?;
    let key = service
        .name
        .strip_prefix(stack)
        .and_then(|rest| rest.strip_prefix('_'))
        .unwrap_or(&service.name);
    Some(format!(
        "warning: service/{} belongs to stack {stack}: the next `docker stack deploy` drops this label \
         (`swarmpilot stack deploy` keeps it). To keep it in the stack file, add:\n{}",
        service.name,
        compose::labels_snippet(key, policy)
    ))
}

/// Applies every policy in turn, printing `service/NAME configured|unchanged`; a policy that
/// cannot be applied is reported on `err` and does not stop the others.
pub async fn apply_all<S: Swarm>(
    swarm: &S,
    policies: &[LoadedPolicy],
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<()> {
    let mut failed = 0;
    for loaded in policies {
        let service = loaded.policy.service();
        match apply_to_service(swarm, &loaded.policy).await {
            Ok((applied, info)) => {
                writeln!(out, "service/{service} {}", applied.as_str())?;
                if applied == Applied::Configured {
                    if let Some(warning) = stack_warning(&info, &loaded.policy) {
                        writeln!(err, "{warning}")?;
                    }
                }
            }
            Err(e) => {
                failed += 1;
                writeln!(err, "error: service/{service} ({}): {e}", loaded.source)?;
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} policies not applied", policies.len());
    }
    Ok(())
}

/// Every policy in `paths`, or every problem found in any of them (each naming its file):
/// nothing partial. One service takes one policy, across files too.
pub fn load_all(paths: &[PathBuf]) -> anyhow::Result<Result<Vec<LoadedPolicy>, Vec<Diagnostic>>> {
    let mut loaded: Vec<LoadedPolicy> = Vec::new();
    let mut problems = Vec::new();
    for file in load_policies(paths)? {
        if file.compose {
            problems.push(Diagnostic::new(
                file.name.clone(),
                "is a compose file: its policies are deployed with the stack (swarmpilot stack deploy -c FILE STACK)",
            ));
            continue;
        }
        match file.policies {
            Ok(policies) => {
                for policy in policies {
                    let service = policy.service();
                    if let Some(first) = loaded.iter().find(|p| p.policy.service() == service) {
                        problems.push(Diagnostic::new(
                            file.name.clone(),
                            format!(
                                "service {service:?} already has a policy in {}; one service takes one policy",
                                first.source
                            ),
                        ));
                    }
                    loaded.push(LoadedPolicy {
                        source: file.name.clone(),
                        policy,
                    });
                }
            }
            Err(found) => problems.extend(found.within(&file.name).0),
        }
    }
    Ok(if problems.is_empty() {
        Ok(loaded)
    } else {
        Err(problems)
    })
}

/// `swarmpilot apply`: every problem on stderr and nothing written if any file is invalid;
/// otherwise one `service/NAME configured|unchanged` line per policy.
pub fn run(args: &Args, _output: Output) -> anyhow::Result<ExitCode> {
    let policies = match load_all(&args.files)? {
        Ok(policies) => policies,
        Err(problems) => {
            let mut err = std::io::stderr().lock();
            for problem in &problems {
                writeln!(err, "{problem}")?;
            }
            bail!("{} problem(s) found; nothing applied", problems.len())
        }
    };
    block_on(async {
        let swarm = DockerSwarm::connect().await?;
        let mut out = std::io::stdout().lock();
        apply_all(&swarm, &policies, &mut out, &mut std::io::stderr()).await
    })??;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEB: &str = "apiVersion: swarmpilot.io/v1alpha1\nkind: ScalingPolicy\nmetadata: {name: web}\nspec:\n  maxReplicas: 5\n  metrics:\n    - name: cpu\n      docker: {resource: cpu}\n      target: {utilization: 70}\n";

    #[test]
    fn one_bad_file_fails_the_whole_load_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), WEB).unwrap();
        let bad = WEB
            .replace("web", "api")
            .replace("maxReplicas: 5", "maxReplicas: 0");
        std::fs::write(dir.path().join("b.yaml"), bad).unwrap();
        let problems = load_all(&[dir.path().to_owned()]).unwrap().unwrap_err();
        assert!(!problems.is_empty());
        assert!(
            problems.iter().all(|p| p.path.contains("b.yaml")),
            "{problems:?}"
        );
    }

    #[test]
    fn two_files_for_one_service_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), WEB).unwrap();
        std::fs::write(dir.path().join("b.yaml"), WEB).unwrap();
        let problems = load_all(&[dir.path().to_owned()]).unwrap().unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].path.contains("b.yaml"), "{problems:?}");
        assert!(
            problems[0].message.contains("already has a policy"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_stack_service_gets_the_deploy_labels_to_keep_its_policy() {
        let policy = crate::policy::parse(
            &WEB.replace("maxReplicas: 5", "service: shop_web\n  maxReplicas: 5"),
        )
        .unwrap();
        let mut service = ServiceInfo {
            id: "x".into(),
            name: "shop_web".into(),
            version: 1,
            labels: BTreeMap::new(),
            replicas: Some(1),
            stack: Some("shop".into()),
            cpu_limit_nanos: None,
            memory_limit_bytes: None,
            ports: Vec::new(),
            rollout: None,
        };
        let warning = stack_warning(&service, &policy).unwrap();
        assert!(warning.contains("stack shop"), "{warning}");
        let snippet = warning.split_once("add:\n").unwrap().1;
        let document: serde_yaml::Value = serde_yaml::from_str(snippet).unwrap();
        let services = compose::services(&document).unwrap();
        assert_eq!(services[0].key, "web");
        assert_eq!(compose::validate(&services).unwrap(), vec![policy.clone()]);
        service.stack = None;
        assert_eq!(stack_warning(&service, &policy), None);
    }

    #[test]
    fn a_compose_file_is_not_applied() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("stack.yml"),
            "services: {web: {image: app}}",
        )
        .unwrap();
        let problems = load_all(&[dir.path().to_owned()]).unwrap().unwrap_err();
        assert!(problems[0].message.contains("stack deploy"), "{problems:?}");
    }

    #[test]
    fn valid_files_load_in_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.yml"), WEB.replace("web", "b")).unwrap();
        std::fs::write(dir.path().join("a.yaml"), WEB.replace("web", "a")).unwrap();
        let loaded = load_all(&[dir.path().to_owned()]).unwrap().unwrap();
        let services: Vec<&str> = loaded.iter().map(|p| p.policy.service()).collect();
        assert_eq!(services, ["a", "b"]);
    }
}
