//! `osmen export k8s`: writes the manifests of [`crate::stack::k8s`] as YAML, to a folder
//! (one file per service and a kustomization) or to standard output, and tells the
//! operator on standard error which Secret to create and what did not translate.

use std::io::Write as _;

use anyhow::{Context as _, bail};
use yaml_rust2::YamlEmitter;

use super::config::to_yaml;
use super::{Ctx, OK, out};
use crate::cli::{ExportArgs, ExportTarget, K8sArgs};
use crate::stack::k8s::{self, ExportOptions, ManifestFile};

/// A Kubernetes quantity as the API accepts it: a number and an optional suffix.
fn check_quantity(q: &str) -> anyhow::Result<()> {
    let num_end = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(num_end);
    let suffixes = [
        "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E",
    ];
    if num.is_empty() || num.parse::<f64>().is_err() || !suffixes.contains(&suffix) {
        bail!(
            "--volume-size {q:?} is not a Kubernetes quantity: write a number with an \
             optional unit, such as 10Gi, 500Mi or 1Ti"
        );
    }
    Ok(())
}

/// One file's text: its header as comments, then each object as a YAML document.
pub fn render_file(f: &ManifestFile) -> anyhow::Result<String> {
    let mut s = String::new();
    for line in &f.header {
        s.push_str(&format!("# {line}\n"));
    }
    for obj in &f.objects {
        let mut doc = String::new();
        YamlEmitter::new(&mut doc).dump(&to_yaml(obj))?;
        s.push_str(&doc);
        s.push('\n');
    }
    Ok(s)
}

pub fn run(ctx: &Ctx, args: &ExportArgs) -> anyhow::Result<u8> {
    match &args.target {
        ExportTarget::K8s(a) => k8s_run(ctx, a),
    }
}

fn k8s_run(ctx: &Ctx, a: &K8sArgs) -> anyhow::Result<u8> {
    check_quantity(&a.volume_size)?;
    let opts = ExportOptions {
        services: ctx.project.active_services(&ctx.global.profiles, &[]),
        volume_size: a.volume_size.clone(),
        cpu_target_percent: ctx.config.advisor.cpu_percent.round().clamp(1.0, 100.0) as u32,
    };
    let ex = k8s::export(&ctx.project, &opts);
    // Two services whose names reduce to one file name (api_v1, api-v1), or a service
    // named kustomization, would overwrite each other.
    let mut seen = std::collections::BTreeSet::new();
    for f in &ex.files {
        if !seen.insert(f.name.as_str()) {
            bail!(
                "two services would both be written to {}: rename one (Kubernetes names \
                 allow only a-z, 0-9 and -)",
                f.name
            );
        }
    }
    match &a.out {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the folder {}", dir.display()))?;
            for f in &ex.files {
                let path = dir.join(&f.name);
                std::fs::write(&path, render_file(f)?)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            eprintln!(
                "wrote {} files to {} (kubectl apply -k {})",
                ex.files.len(),
                dir.display(),
                dir.display()
            );
        }
        None => {
            let mut s = String::new();
            for f in ex.files.iter().filter(|f| f.name != "kustomization.yaml") {
                s.push_str(&render_file(f)?);
            }
            out(&s)?;
        }
    }
    let mut err = std::io::stderr().lock();
    if !ex.secret_keys.is_empty() {
        let keys: Vec<&String> = ex.secret_keys.keys().collect();
        writeln!(
            err,
            "create the Secret first (values are never exported):\n  kubectl create secret \
             generic {} {}",
            ex.secret_name,
            keys.iter()
                .map(|k| match ex.secret_files.get(*k) {
                    Some(file) => format!("--from-file={k}={file}"),
                    None => format!("--from-literal={k}=..."),
                })
                .collect::<Vec<_>>()
                .join(" ")
        )?;
    }
    for w in &ex.warnings {
        writeln!(err, "warning: {w}")?;
    }
    Ok(OK)
}

#[cfg(test)]
mod tests {
    use super::check_quantity;

    #[test]
    fn volume_size_must_be_a_quantity() {
        for ok in ["10Gi", "500Mi", "1", "1.5Ti", "20G"] {
            check_quantity(ok).unwrap();
        }
        for bad in ["", "Gi", "10 GB", "10gb", "ten"] {
            let e = check_quantity(bad).unwrap_err().to_string();
            assert!(e.contains("--volume-size"), "{e}");
        }
    }
}
