//! `authwatch filters`: CloudWatch metric filters, alarms and Contributor Insights rules for one log group,
//! generated from the detector specs as files, or created in AWS with `--apply`.

use std::io::Write;

use anyhow::{bail, Context};

use crate::cli::{load_specs, FiltersArgs, EXIT_OK, EXIT_REJECTED};
use crate::event::LogFormat;
use crate::metric_filters::apply::{self, Connection};
use crate::metric_filters::generate::{self, OutputFormat, Target};
use crate::sanitize::for_terminal;
use crate::spec::cloudwatch::names;

pub fn run(a: &FiltersArgs) -> anyhow::Result<i32> {
    let specs = load_specs(a.filters.as_ref())?;
    let format = LogFormat::parse(&a.log_format)
        .with_context(|| format!("--log-format: '{}' is not cognito or cloudtrail", for_terminal(&a.log_format)))?;
    let target = Target::new(&a.log_group, format, a.namespace.as_deref(), &a.sns_topic_arns, &a.name_prefix)
        .map_err(anyhow::Error::msg)?;
    let plan = generate::plan(&specs, &target);
    for note in &plan.skipped {
        eprintln!("authwatch: skipped {}", for_terminal(note));
    }
    if a.apply {
        return apply(a, &plan);
    }
    let formats = OutputFormat::parse_list(&a.output_format).map_err(|e| anyhow::anyhow!("--output-format: {e}"))?;
    if let Some(arn) = &a.waf_user_pool_arn {
        crate::respond::iac::check_pool_arn(arn).map_err(|e| anyhow::anyhow!("--waf-user-pool-arn: {e}"))?;
    }
    let waf = a.waf_user_pool_arn.as_deref().map(|arn| (arn, a.name_prefix.as_str()));
    match &a.out_dir {
        None if formats.len() > 1 => {
            bail!("--output-format all writes several files: give --out-dir")
        }
        None => {
            let mut out = std::io::stdout().lock();
            let iac = matches!(
                formats[0],
                OutputFormat::CloudFormationJson | OutputFormat::CloudFormationYaml | OutputFormat::Terraform
            );
            let doc = match waf {
                // One document each: the template, or the Terraform file, with the WAF side in it.
                Some(w) if iac => {
                    with_waf(generate::files(&plan, formats[0]), &plan, formats[0], w).into_values().collect()
                }
                _ => generate::stdout_document(&plan, formats[0]),
            };
            out.write_all(doc.as_bytes())?;
            out.flush()?;
        }
        Some(dir) => {
            for f in formats {
                let files = generate::files(&plan, f);
                let files = match waf {
                    Some(w) => with_waf(files, &plan, f, w),
                    None => files,
                };
                for (path, content) in files {
                    let path = dir.join(path);
                    if let Some(parent) = path.parent() {
                        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
                    }
                    std::fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
                    eprintln!("wrote {}", for_terminal(&path.display().to_string()));
                }
            }
        }
    }
    Ok(EXIT_OK)
}

/// `--waf-user-pool-arn`: the CloudFormation template and the Terraform file also hold the active
/// response's WAF side (`respond::iac`); other formats are left as they are.
fn with_waf(
    mut files: std::collections::BTreeMap<String, String>,
    plan: &generate::Plan,
    format: OutputFormat,
    (arn, prefix): (&str, &str),
) -> std::collections::BTreeMap<String, String> {
    use crate::respond::iac;
    let mut template = generate::cloudformation(plan);
    match format {
        OutputFormat::CloudFormationJson => {
            iac::merge_cloudformation(&mut template, arn, prefix);
            files.insert("cloudformation.json".into(), generate::to_json(&template));
        }
        OutputFormat::CloudFormationYaml => {
            iac::merge_cloudformation(&mut template, arn, prefix);
            files.insert("cloudformation.yaml".into(), generate::to_yaml(&template));
        }
        OutputFormat::Terraform => {
            if let Some(tf) = files.get_mut("authwatch.tf") {
                tf.push_str(&iac::terraform(arn, prefix));
            }
        }
        _ => {}
    }
    files
}

fn apply(a: &FiltersArgs, plan: &generate::Plan) -> anyhow::Result<i32> {
    if let Some(r) = &a.region {
        names::region(r).map_err(|e| anyhow::anyhow!("--region: {e}"))?;
    }
    let conn =
        Connection { region: a.region.clone(), profile: a.profile.clone(), endpoint_url: a.endpoint_url.clone() };
    let report = apply::apply(plan, &conn, a.dry_run).context("starting the AWS client runtime")?;
    for item in &report.items {
        println!("{item}");
    }
    let (failed, changed) = (report.failed(), report.changed());
    match (failed, changed, a.dry_run) {
        (0, 0, _) => println!("nothing to change: {} resources already up to date", report.items.len()),
        (0, n, true) => println!("dry run: {n} of {} resources would change", report.items.len()),
        (0, n, false) => println!("{n} of {} resources created or updated", report.items.len()),
        (f, _, _) => println!("{f} of {} resources failed", report.items.len()),
    }
    Ok(if failed == 0 { EXIT_OK } else { EXIT_REJECTED })
}
