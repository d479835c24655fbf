use super::*;

#[test]
fn shell_split_quotes() {
    assert_eq!(
        shell_split(r#"redis-server --save "" --x 'a b' c\ d"#).unwrap(),
        vec!["redis-server", "--save", "", "--x", "a b", "c d"]
    );
    assert!(shell_split("a 'b").is_err());
}

fn load(src: &str) -> Result<Project, String> {
    let opts = LoadOptions {
        project_name: Some("t".into()),
        ..LoadOptions::default()
    };
    load_str(src, Path::new("/x/compose.yml"), &opts).map_err(|e| e.to_string())
}

/// Each row: a service body holding a secret, and the text its error must keep (the
/// key path; the line is 4). No error may quote the secret itself.
const SECRETS: &[(&str, &str)] = &[
    (
        "environment: {DB_PASSWORD: \"s3cretF${oops\"}",
        "services.a.environment.DB_PASSWORD: unterminated `${`",
    ),
    (
        "environment: [\"DB_PASSWORD=s3cretF${oops\"]",
        "services.a.environment[0]: unterminated `${`",
    ),
    (
        "command: [\"--password=s3cretG${x\"]",
        "services.a.command[0]: unterminated `${`",
    ),
    (
        "command: [\"--requirepass\", \"s3cretG${x\"]",
        "services.a.command[1]: unterminated `${`",
    ),
    (
        "command: \"server --password=s3cretG ${1x}\"",
        "services.a.command: invalid variable name",
    ),
    (
        "command: \"server --password='s3cretG\"",
        "unterminated single quote",
    ),
];

#[test]
fn errors_about_a_secret_value_mask_it() {
    for (body, want) in SECRETS {
        let src = format!("services:\n  a:\n    image: i\n    {body}\n");
        let e = load(&src).unwrap_err();
        assert!(e.contains(want), "{body}: expected {want:?}, got {e}");
        assert!(
            e.contains("compose.yml:4:"),
            "{body}: expected line 4, got {e}"
        );
        assert!(!e.contains("s3cret"), "{body}: the secret is quoted: {e}");
    }
    // A value that is not a secret is still quoted.
    let e = load("services:\n  a:\n    image: i\n    environment: {GREETING: \"hi${x\"}\n")
        .unwrap_err();
    assert!(e.contains("\"hi${x\""), "{e}");
}

/// Looking each service up in the `services:` mapping by linear search made loading
/// quadratic (40k services took over a minute). Expected: 50k services load in well
/// under the bound, debug build. Timing-dependent, so only under `--ignored`.
#[test]
#[ignore = "timing; run with cargo test --lib -- --ignored fifty_thousand"]
fn fifty_thousand_services_load_in_near_linear_time() {
    let mut src = String::from("services:\n");
    for i in 0..50_000 {
        src.push_str(&format!("  s{i}: {{image: osmen-shell:test}}\n"));
    }
    let t = std::time::Instant::now();
    let p = load(&src).unwrap();
    assert_eq!(p.services.len(), 50_000);
    let took = t.elapsed();
    assert!(took < std::time::Duration::from_secs(30), "took {took:?}");
}

/// Each row: a service body, and the error it must give (the value named, the fix).
const SHAPES: &[(&str, &str)] = &[
    (
        "ports: 8080",
        "services.a.ports: ports takes a list, found \"8080\": write `ports: [\"8080:80\"]`",
    ),
    (
        "ports: \"8080:80\"",
        "ports takes a list, found \"8080:80\": write `ports: [\"8080:80\"]`",
    ),
    (
        "dns_search: [a]\n    devices: /dev/x",
        "expected a list, found \"/dev/x\": write `devices: [\"/dev/x\"]`",
    ),
    (
        "container_name: c\n    scale: 2",
        "container_name is set but scale is 2: one name cannot serve several containers; \
         remove container_name or set scale to 1",
    ),
    (
        "container_name: c\n    deploy: {replicas: 3}",
        "container_name is set but deploy.replicas is 3",
    ),
    (
        "networks: {n: {aliases: x}}",
        "services.a.networks.n.aliases: aliases must be a list, found \"x\": write \
         `aliases: [\"x\"]`",
    ),
];

#[test]
fn shape_errors_name_the_value_and_the_fix() {
    for (body, want) in SHAPES {
        let src = format!("services:\n  a:\n    image: i\n    {body}\nnetworks: {{n: {{}}}}\n");
        let e = load(&src).unwrap_err();
        assert!(e.contains(want), "{body}: expected {want:?}, got {e}");
    }
    let ok = load(
        "services:\n  a:\n    image: i\n    networks: {n: {aliases: [x]}}\nnetworks: {n: {}}\n",
    );
    assert!(ok.is_ok(), "{ok:?}");
}

#[test]
fn models_without_an_ollama_service_are_refused_with_the_reason() {
    let e = load("services:\n  a:\n    image: i\nmodels:\n  llm:\n    model: ai/smollm2\n")
        .unwrap_err();
    assert!(
        e.contains("4:1: models: models are refused: the stack has no Ollama service"),
        "{e}"
    );
    // With one, the binding sets the variables and the wait on it.
    let p = load(
        "services:\n  ollama:\n    image: ollama/ollama\n    environment:\n      \
         OLLAMA_HOST: 0.0.0.0:11500\n  a:\n    image: i\n    models: [my-llm]\n\
         models:\n  my-llm:\n    model: smollm2\n    name: small\n",
    )
    .unwrap();
    let a = &p.services["a"];
    assert_eq!(a.environment["MY_LLM_URL"], "http://ollama:11500/v1");
    assert_eq!(a.environment["MY_LLM_MODEL"], "small");
    assert_eq!(
        a.depends_on["ollama"].condition,
        crate::stack::compose::Condition::ServiceStarted
    );
    let e = load(
        "services:\n  ollama:\n    image: ollama/ollama\n  a:\n    image: i\n    \
         environment: {LLM_URL: x}\n    models: [llm]\nmodels:\n  llm:\n    model: m\n    \
         colour: red\n",
    )
    .unwrap_err();
    assert!(
        e.contains("LLM_URL is set in the environment and by model \"llm\""),
        "{e}"
    );
    assert!(e.contains("unknown key `colour` of a model"), "{e}");
}

#[test]
fn top_level_networks_and_volumes_apply_or_refuse_every_key() {
    // The legacy external form names the engine object.
    let p = load(
        "services:\n  a:\n    image: i\n    networks: [front]\n    volumes: [data:/d]\n\
         networks:\n  front:\n    external:\n      name: shared-front\n\
         volumes:\n  data:\n    external: {name: shared-data}\n",
    )
    .unwrap();
    assert_eq!(
        (
            p.networks["front"].name.as_str(),
            p.networks["front"].external
        ),
        ("shared-front", true)
    );
    assert_eq!(
        (p.volumes["data"].name.as_str(), p.volumes["data"].external),
        ("shared-data", true)
    );
    let e = load("services:\n  a:\n    image: i\nnetworks:\n  n:\n    external: {}\n").unwrap_err();
    assert!(
        e.contains("networks.n.external") && e.contains("name"),
        "{e}"
    );
    // The other options are applied: see `objects::tests`.
}

#[test]
fn deploy_resources_apply_pids_and_refuse_what_one_engine_lacks() {
    let p = load(
        "services:\n  a:\n    image: i\n    deploy:\n      resources:\n        \
         limits: {pids: 50, memory: 64m}\n",
    )
    .unwrap();
    assert_eq!(p.services["a"].settings.pids_limit, Some(50));
    for (body, at, words) in [
        (
            "reservations: {generic_resources: []}",
            "/x/compose.yml:6:24",
            vec!["reservations.generic_resources", "Swarm"],
        ),
        (
            "limits: {cpu: 1}",
            "/x/compose.yml:6:18",
            vec!["limits.cpu", "unknown key `cpu`", "cpus, memory, pids"],
        ),
        (
            "limit: {cpus: 1}",
            "/x/compose.yml:6:9",
            vec!["resources.limit", "unknown key `limit`"],
        ),
    ] {
        let e = load(&format!(
            "services:\n  a:\n    image: i\n    deploy:\n      resources:\n        {body}\n"
        ))
        .unwrap_err();
        assert!(e.contains(at), "{at} in {e}");
        for w in words {
            assert!(e.contains(w), "{w:?} in {e}");
        }
    }
    let e = load(
        "services:\n  a:\n    image: i\n    pids_limit: 10\n    deploy:\n      \
         resources:\n        limits: {pids: 20}\n",
    )
    .unwrap_err();
    assert!(
        e.contains("pids_limit is 10 but") && e.contains(":7:"),
        "{e}"
    );
}

#[test]
fn suggestions() {
    assert_eq!(
        did_you_mean("helthcheck", super::super::settings::APPLIED_KEYS),
        " (did you mean `healthcheck`?)"
    );
    assert_eq!(
        did_you_mean("zzzzzzzz", super::super::settings::APPLIED_KEYS),
        ""
    );
}

/// A stack with an Ollama service, `app` using `uses`, and the top-level `models` given
/// (each line indented as a top-level model entry).
fn models_stack(uses: &str, models: &str) -> String {
    format!(
        "services:\n  ollama:\n    image: ollama/ollama\n  app:\n    image: i\n    models:{uses}\n\
         models:\n{models}"
    )
}

#[test]
fn two_models_served_under_one_name_are_refused_naming_both() {
    let e = load(&models_stack(
        " [a, b]",
        "  a: {model: smollm, context_size: 2048, name: shared}\n  \
         b: {model: qwen2, context_size: 8192, name: shared}\n",
    ))
    .unwrap_err();
    assert!(
        e.contains("/x/compose.yml:9:")
            && e.contains("models.b: models \"a\" (smollm with context_size 2048, line 8) and \"b\" (qwen2 with context_size 8192) are both served as \"shared\"")
            && e.contains("give one of them another `name:`"),
        "{e}"
    );
    // Derived names that collide: `smollm` with 2048 is `smollm-ctx2048`, which `b` pulls.
    let e = load(&models_stack(
        " [a, b]",
        "  a: {model: smollm, context_size: 2048}\n  b: {model: smollm-ctx2048}\n",
    ))
    .unwrap_err();
    assert!(e.contains("are both served as \"smollm-ctx2048\""), "{e}");
    // The same model twice under one name is one model: accepted.
    load(&models_stack(
        " [a, b]",
        "  a: {model: smollm, context_size: 2048}\n  b: {model: \"smollm:latest\", context_size: 2048}\n",
    ))
    .unwrap();
}

#[test]
fn model_variables_must_be_variable_names_and_distinct() {
    let e = load(&models_stack(
        "\n      llm: {endpoint_var: \"BAD VAR=x\", model_var: \"\"}",
        "  llm: {model: smollm}\n",
    ))
    .unwrap_err();
    assert!(
        e.contains("7:") && e.contains("services.app.models.llm.endpoint_var: \"BAD VAR=x\" is not an environment variable name"),
        "{e}"
    );
    assert!(
        e.contains("services.app.models.llm.model_var: \"\" is not an environment variable name"),
        "{e}"
    );
    let e = load(&models_stack(
        "\n      llm: {model_var: \"M=injected\"}",
        "  llm: {model: smollm}\n",
    ))
    .unwrap_err();
    assert!(
        e.contains("\"M=injected\" is not an environment variable name"),
        "{e}"
    );
    // A key whose default variables are no names.
    let e = load(&models_stack(" [\"1llm\"]", "  1llm: {model: smollm}\n")).unwrap_err();
    assert!(
        e.contains("model \"1llm\" gives the variable \"1LLM_URL\", which is not"),
        "{e}"
    );
    // L4: one variable for two models, or for both of one model's values.
    let e = load(&models_stack(
        "\n      a: {model_var: M}\n      b: {model_var: M}",
        "  a: {model: smollm}\n  b: {model: qwen2}\n",
    ))
    .unwrap_err();
    assert!(
        e.contains("M is set by both model \"a\" and model \"b\""),
        "{e}"
    );
    assert!(!e.contains("set in the environment"), "{e}");
    let e = load(&models_stack(
        "\n      a: {endpoint_var: V, model_var: V}",
        "  a: {model: smollm}\n",
    ))
    .unwrap_err();
    assert!(
        e.contains("model \"a\" sets V as both its endpoint_var and its model_var"),
        "{e}"
    );
}

#[test]
fn context_sizes_out_of_range_and_a_missing_model_say_so_once() {
    for (v, want) in [
        ("-5", "context_size must be at least 1, found \"-5\""),
        ("0", "context_size must be at least 1"),
        (
            "99999999999",
            "context_size must be at most 4294967295, found \"99999999999\"",
        ),
        (
            "lots",
            "expected a whole number of tokens (such as 8192), found \"lots\"",
        ),
    ] {
        let e = load(&models_stack(
            " [llm]",
            &format!("  llm: {{model: smollm, context_size: {v}}}\n"),
        ))
        .unwrap_err();
        assert!(e.contains(want), "{v}: {e}");
    }
    let e = load(&models_stack(" [llm]", "  llm: {context_size: 2048}\n")).unwrap_err();
    assert!(e.contains("a model needs `model:`"), "{e}");
    assert!(!e.contains("is not under the top-level"), "{e}");
}

#[test]
fn model_names_with_spaces_are_refused_and_digests_derive_from_the_repository() {
    let e = load(&models_stack(
        " [llm]",
        "  llm: {model: \"  smollm  \", context_size: 1}\n",
    ))
    .unwrap_err();
    assert!(
        e.contains("models.llm.model: \"  smollm  \" has spaces") && e.contains("write \"smollm\""),
        "{e}"
    );
    assert!(!e.contains("a model needs"), "{e}");
    let p = load(&models_stack(
        " [a, b]",
        "  a: {model: \"smollm@sha256:6a07aa\", context_size: 2048}\n  \
         b: {model: \"smollm:135m@sha256:6a07aa\", context_size: 2048}\n",
    ))
    .unwrap();
    assert_eq!(p.models["a"].served, "smollm-ctx2048");
    assert_eq!(p.models["b"].served, "smollm-ctx2048:135m");
    assert_eq!(p.services["app"].environment["A_MODEL"], "smollm-ctx2048");
}
