//! deploy/kubernetes/: the Indexed Job that runs N segments and the Job that merges their
//! reports, rendered as `envsubst` would with params.env (and with another N), parsed, and
//! checked: an Indexed Job, completions == parallelism == N, the segment flag wired to the
//! completion index, resources set, reports written where the merge step reads them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests

use amplitude_loadgen::Segment;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes")
}

/// params.env: `NAME=value` lines, comments skipped.
fn params() -> BTreeMap<String, String> {
    std::fs::read_to_string(deploy_dir().join("params.env"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && l.contains('='))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect()
}

/// `envsubst '${A} ${B}…'`: replaces `${NAME}` for the given names only.
fn render(file: &str, vars: &BTreeMap<String, String>) -> (String, Value) {
    let mut text = std::fs::read_to_string(deploy_dir().join(file)).unwrap();
    for (k, v) in vars {
        text = text.replace(&format!("${{{k}}}"), v);
    }
    assert!(!text.contains("${"), "{file}: a variable not in params.env");
    let doc: Value = serde_yaml::from_str(&text).unwrap();
    (text, doc)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|a| match a {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

/// The value after `flag` in `args`.
fn after<'a>(args: &'a [String], flag: &str) -> &'a str {
    let i = args.iter().position(|a| a == flag).unwrap();
    &args[i + 1]
}

#[test]
fn the_indexed_job_runs_segment_k_of_n_in_pod_k_and_the_merge_job_reads_their_reports() {
    let defaults = params();
    for name in defaults.keys() {
        let used = ["job.yaml", "merge-job.yaml", "reports-pvc.yaml"]
            .iter()
            .any(|f| {
                std::fs::read_to_string(deploy_dir().join(f))
                    .unwrap()
                    .contains(&format!("${{{name}}}"))
            });
        assert!(used, "params.env sets {name}, which no manifest uses");
    }
    let n_default: u32 = defaults["SEGMENTS"].parse().unwrap();
    for n in [n_default, 7] {
        let mut vars = defaults.clone();
        vars.insert("SEGMENTS".into(), n.to_string());
        let (_, job) = render("job.yaml", &vars);
        assert_eq!(job["apiVersion"], "batch/v1");
        assert_eq!(job["kind"], "Job");
        let spec = &job["spec"];
        assert_eq!(spec["completionMode"], "Indexed");
        assert_eq!(spec["completions"], n);
        assert_eq!(spec["parallelism"], n);
        assert_eq!(spec["backoffLimit"], 0, "a retried segment sends twice");
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Never");
        let c = &pod["containers"][0];
        let args = strings(&c["args"]);
        assert_eq!(args[0], "run");
        assert_eq!(args[1], vars["SCENARIO"]);
        assert_eq!(after(&args, "--target"), vars["TARGET"]);
        // One wall-clock start for all pods, a number `run --start-at` takes.
        let start_at: i64 = after(&args, "--start-at").parse().unwrap();
        assert_eq!(start_at.to_string(), vars["START_AT"]);
        // The segment flag is wired to the completion index: pod K runs K/N.
        let seg = after(&args, "--segment");
        assert_eq!(seg, format!("$(JOB_COMPLETION_INDEX)/{n}"));
        for k in 0..n {
            let expanded: Segment = seg
                .replace("$(JOB_COMPLETION_INDEX)", &k.to_string())
                .parse()
                .unwrap();
            assert_eq!(expanded, Segment::new(k, n).unwrap());
        }
        let env: BTreeMap<String, Value> = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["name"].as_str().unwrap().to_owned(), e.clone()))
            .collect();
        assert_eq!(
            env["JOB_COMPLETION_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"],
            "metadata.annotations['batch.kubernetes.io/job-completion-index']"
        );
        assert!(env.contains_key("API_KEY"));
        assert_eq!(after(&args, "--api-key"), "$(API_KEY)");
        // Resources set, requests == limits.
        let res = &c["resources"];
        for kind in ["cpu", "memory"] {
            assert!(res["requests"][kind].is_string(), "{kind}: {res}");
            assert_eq!(res["requests"][kind], res["limits"][kind]);
        }
        assert_eq!(res["requests"]["cpu"], vars["CPU"]);
        // Each pod writes its own report onto the shared volume.
        let report = after(&args, "--report-json");
        let mount = c["volumeMounts"][0]["mountPath"].as_str().unwrap();
        assert!(report.starts_with(&format!("{mount}/")), "{report}");
        assert!(report.contains("$(JOB_COMPLETION_INDEX)"), "{report}");
        let claim = &pod["volumes"][0]["persistentVolumeClaim"]["claimName"];
        assert_eq!(claim, &vars["REPORTS_PVC"]);

        // The merge Job reads exactly those files from the same volume.
        let (_, merge) = render("merge-job.yaml", &vars);
        assert_eq!(merge["kind"], "Job");
        let mpod = &merge["spec"]["template"]["spec"];
        assert_eq!(
            mpod["volumes"][0]["persistentVolumeClaim"]["claimName"],
            *claim
        );
        let mc = &mpod["containers"][0];
        assert_eq!(mc["volumeMounts"][0]["mountPath"], mount);
        assert!(mc["resources"]["limits"]["memory"].is_string());
        let script = strings(&mc["args"]).join(" ");
        let glob = report.replace("$(JOB_COMPLETION_INDEX)", "*");
        assert!(
            script.starts_with(&format!("exec amplitude-loadgen merge {glob} ")),
            "{script}"
        );
        assert!(script.contains("--report-json") && script.contains("--report-html"));

        let (_, pvc) = render("reports-pvc.yaml", &vars);
        assert_eq!(pvc["kind"], "PersistentVolumeClaim");
        assert_eq!(pvc["metadata"]["name"], *claim);
        assert_eq!(pvc["spec"]["accessModes"][0], "ReadWriteMany");
    }
}
