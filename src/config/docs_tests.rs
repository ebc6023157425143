//! The TOML examples of the documentation load, so the docs cannot drift from the schema.

use std::path::Path;

use super::*;

/// A configuration that every example is appended to.
const MINIMAL: &str = "[[probe]]\nname = \"docs-minimal\"\npath = \"/v2/me.json\"\n";

/// Returns the ```toml blocks of a Markdown text.
fn toml_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match &mut current {
            None if line.trim_start().starts_with("```toml") => current = Some(String::new()),
            Some(block) if line.trim_start().starts_with("```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

fn documents() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = vec![root.join("README.md")];
    let docs = std::fs::read_dir(root.join("docs")).expect("docs folder");
    for entry in docs {
        let path = entry.expect("docs entry").path();
        if path.extension().is_some_and(|extension| extension == "md") {
            paths.push(path);
        }
    }
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read the document");
            (path.display().to_string(), text)
        })
        .collect()
}

#[test]
fn documented_examples_load() {
    let mut checked = 0;
    for (file, text) in documents() {
        for block in toml_blocks(&text) {
            // `[[rule` also catches a misspelled `[[rules]]`, which the schema rejects.
            if !block.contains("[[rule") && !block.contains("[[probe") {
                continue;
            }
            let config = format!("{MINIMAL}{block}");
            if let Err(error) = parse(&config, &file) {
                panic!("an example of {file} does not load:\n{block}\n{error}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 5, "only {checked} examples found");
}

#[test]
fn documented_checklist_matches_alerts_toml() {
    let shipped = parse(DEFAULT_CONFIG, "alerts.toml").expect("alerts.toml loads");
    let rules_doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/rules.md"))
            .expect("read docs/rules.md");
    let mut compared = 0;
    for block in toml_blocks(&rules_doc) {
        let Ok(config) = parse(&format!("{MINIMAL}{block}"), "docs/rules.md") else {
            continue;
        };
        for rule in &config.rules {
            let Some(twin) = shipped.rules.iter().find(|twin| twin.name == rule.name) else {
                continue;
            };
            assert_eq!(rule.expr_text, twin.expr_text, "{}", rule.name);
            assert_eq!(rule.severity, twin.severity, "{}", rule.name);
            assert_eq!(rule.window, twin.window, "{}", rule.name);
            assert_eq!(rule.min_samples, twin.min_samples, "{}", rule.name);
            assert_eq!(rule.runbook, twin.runbook, "{}", rule.name);
            compared += 1;
        }
    }
    assert!(
        compared >= 6,
        "only {compared} documented rules match alerts.toml names"
    );
}
