//! One service's manifest file: its Service, its workload (Deployment, StatefulSet,
//! DaemonSet or Job), the gateway's autoscaler, and the header an operator reads.

use super::*;

pub(super) fn service_file(
    project: &Project,
    svc: &Service,
    opts: &ExportOptions,
    secret_name: &str,
    ambiguous: &BTreeSet<String>,
    ex: &mut Export,
) -> ManifestFile {
    let name = dns_name(&svc.name);
    let lbl = labels(&project.name, &name);
    let selector = json!({ "app.kubernetes.io/name": name });
    let scan = scan_secrets(project, svc, ambiguous);
    let mut extra = BTreeMap::new();
    // A service others wait on to complete is a one-shot task: a Job.
    let one_shot = project.services.values().any(|o| {
        opts.services.contains(&o.name)
            && o.depends_on.get(&svc.name).is_some_and(|d| {
                d.condition == crate::stack::compose::Condition::ServiceCompletedSuccessfully
            })
    });
    let stateful = !one_shot
        && svc
            .volumes
            .iter()
            .any(|m| m.kind == MountKind::Volume && m.source.is_some());

    let pod = pod_spec(project, svc, opts, &scan, &mut extra, one_shot, ex);
    let mut objects = pod.configmaps;

    let mut all_secret: BTreeMap<String, String> = scan.env.clone();
    all_secret.extend(extra);
    for key in all_secret.values() {
        ex.secret_keys
            .entry(key.clone())
            .or_default()
            .insert(svc.name.clone());
    }

    published_port_warnings(svc, ex);
    let (ports, service) = service_object(svc, &lbl, &selector, stateful);
    objects.extend(service);
    let mut template_spec = json!({ "containers": pod.containers });
    for (k, v) in pod.pod {
        template_spec[k] = v;
    }
    if !pod.volumes.is_empty() {
        template_spec["volumes"] = json!(pod.volumes);
    }
    if let Some(g) = svc.stop_grace_period {
        template_spec["terminationGracePeriodSeconds"] = json!(secs(g));
    }
    if one_shot {
        template_spec["restartPolicy"] = json!("OnFailure");
    }
    let template = json!({ "metadata": { "labels": lbl }, "spec": template_spec });
    let kinds = Kinds { one_shot, stateful };
    let workload = workload(svc, &lbl, &selector, template, pod.claims, kinds);
    if stateful && ports.is_empty() {
        ex.warnings.push(format!(
            "{}: a StatefulSet without ports has no governing Service; serviceName {name} \
             names one that does not exist (harmless unless pods need stable DNS names)",
            svc.name
        ));
    }
    objects.push(workload);

    let mut header = vec![format!(
        "{} from {} ({})",
        svc.name,
        project.file.display(),
        kinds.name(svc)
    )];
    if is_gateway(svc) {
        objects.push(autoscaler(svc, &lbl, opts, stateful, &mut header, ex));
    }
    if !all_secret.is_empty() {
        header.push(format!(
            "Reads {} from the Secret {secret_name} (values are never exported)",
            all_secret.values().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    if svc.build.is_some() {
        header.push(format!(
            "Image {} is built locally: push it to a registry the cluster can pull from",
            svc.image.as_deref().unwrap_or("(unnamed)")
        ));
        if svc.image.is_none() {
            ex.warnings.push(format!(
                "{}: built without an `image:` name; set one and push it",
                svc.name
            ));
        }
    }
    ManifestFile {
        name: format!("{name}.yaml"),
        header,
        objects,
    }
}

/// The ports a Service gives the other services, and the Service (none without ports;
/// headless for a StatefulSet or `endpoint_mode: dnsrr`).
fn service_object(
    svc: &Service,
    lbl: &Value,
    selector: &Value,
    stateful: bool,
) -> (Vec<Value>, Option<Value>) {
    let name = dns_name(&svc.name);
    let ports: Vec<Value> = container_ports(svc)
        .into_iter()
        .map(|(target, proto)| {
            let mut p = json!({
                "name": format!("{}-{target}", proto.to_ascii_lowercase()),
                "port": target,
                "targetPort": target,
                "protocol": proto,
            });
            if let Some(a) = port_field(svc, target, |p| p.app_protocol.as_deref()) {
                p["appProtocol"] = json!(a);
            }
            p
        })
        .collect();
    if !ports.is_empty() {
        let mut spec = json!({ "selector": selector, "ports": ports });
        // dnsrr: clients resolve the pods themselves, as a headless Service gives them.
        if stateful || svc.deploy.endpoint_mode.as_deref() == Some("dnsrr") {
            // Headless: the StatefulSet's governing service, and clients reach the pod.
            spec["clusterIP"] = json!("None");
        }
        return (
            ports,
            Some(json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": { "name": name, "labels": lbl },
                "spec": spec,
            })),
        );
    }
    (ports, None)
}

/// What the service's workload is.
#[derive(Clone, Copy)]
struct Kinds {
    /// Others wait on it to complete: a Job.
    one_shot: bool,
    /// It has a named volume: a StatefulSet.
    stateful: bool,
}

impl Kinds {
    fn name(self, svc: &Service) -> &'static str {
        if self.one_shot {
            "Job"
        } else if self.stateful {
            "StatefulSet"
        } else if svc.deploy.is_global() {
            "DaemonSet"
        } else {
            "Deployment"
        }
    }
}

/// The Job, StatefulSet, DaemonSet or Deployment around the pod template.
fn workload(
    svc: &Service,
    lbl: &Value,
    selector: &Value,
    template: Value,
    claims: Vec<Value>,
    kinds: Kinds,
) -> Value {
    let name = dns_name(&svc.name);
    let Kinds { one_shot, stateful } = kinds;
    let workload = if one_shot {
        let retries = match svc.restart {
            Restart::OnFailure(Some(n)) => n,
            Restart::No => 0,
            _ => 6,
        };
        json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": { "name": name, "labels": lbl },
            "spec": { "backoffLimit": retries, "template": template },
        })
    } else if stateful {
        json!({
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": { "name": name, "labels": lbl },
            "spec": {
                "serviceName": name,
                "replicas": svc.replicas,
                "selector": { "matchLabels": selector },
                "template": template,
                "volumeClaimTemplates": claims,
            }
        })
    } else if svc.deploy.is_global() {
        // One pod per node, as `mode: global` runs one task per Swarm node.
        json!({
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": { "name": name, "labels": lbl },
            "spec": {
                "selector": { "matchLabels": selector },
                "template": template,
            }
        })
    } else {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": { "name": name, "labels": lbl },
            "spec": {
                "replicas": svc.replicas,
                "selector": { "matchLabels": selector },
                "template": template,
            }
        })
    };
    let mut workload = workload;
    if !svc.deploy.labels.is_empty() {
        // The service's labels (not its pods'): annotations take any value.
        workload["metadata"]["annotations"] = json!(svc.deploy.labels);
    }
    workload
}

/// The guide's HorizontalPodAutoscaler for the gateway, said in the header.
fn autoscaler(
    svc: &Service,
    lbl: &Value,
    opts: &ExportOptions,
    stateful: bool,
    header: &mut Vec<String>,
    ex: &mut Export,
) -> Value {
    let name = dns_name(&svc.name);
    let min = HPA_MIN_REPLICAS.max(svc.replicas);
    let hpa = json!({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": { "name": format!("{name}-hpa"), "labels": lbl },
        "spec": {
            "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": name },
            "minReplicas": min,
            "maxReplicas": HPA_MAX_REPLICAS.max(min),
            "metrics": [{
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {
                        "type": "Utilization",
                        "averageUtilization": opts.cpu_target_percent,
                    }
                }
            }],
        }
    });
    header.push(format!(
        "HPA: {min}-{} replicas at {}% of the requested CPU (the advisor's threshold)",
        HPA_MAX_REPLICAS.max(min),
        opts.cpu_target_percent
    ));
    if stateful {
        ex.warnings.push(format!(
            "{}: the gateway has a named volume, so it is a StatefulSet, but its HPA \
             targets a Deployment; drop the volume or edit scaleTargetRef",
            svc.name
        ));
    }
    hpa
}
