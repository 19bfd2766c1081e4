//! The README's client and server snippets are the examples CI runs: each block after
//! an `<!-- example: PATH -->` comment must be that example's code, line
//! for line and in order (the README leaves out the module docs, the
//! machinery modules and `main`). The README's blocks are doctests too, so
//! they compile.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

const README: &str = include_str!("../README.md");

/// `(path, code)` of every block the README marks as an example's.
fn marked_blocks() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut blocks = Vec::new();
    let mut lines = README.lines();
    while let Some(line) = lines.next() {
        let Some(path) = line
            .strip_prefix("<!-- example: ")
            .and_then(|rest| rest.strip_suffix(" -->"))
        else {
            continue;
        };
        let fence = lines.next().unwrap_or_default();
        assert!(fence.starts_with("```rust"), "{path}: a rust block follows");
        let code: Vec<_> = lines.by_ref().take_while(|l| *l != "```").collect();
        blocks.push((path, code));
    }
    blocks
}

#[test]
fn the_client_snippets_are_the_examples_code() {
    let blocks = marked_blocks();
    let paths: Vec<_> = blocks.iter().map(|(path, _)| *path).collect();
    assert_eq!(
        paths,
        [
            "examples/reqwest_client.rs",
            "examples/hyper_client.rs",
            "examples/tonic_client.rs",
            "examples/axum_server.rs"
        ]
    );
    for (path, code) in blocks {
        let example = std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")))
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut rest = example.lines();
        for line in code.iter().filter(|l| !l.trim().is_empty()) {
            assert!(
                rest.any(|l| l == *line),
                "{path} has not, in the README's order, the line:\n{line}"
            );
        }
        assert!(
            code.iter()
                .any(|l| l.contains("fn greeter(") || l.contains("fn app(")),
            "{path}: the README shows how the stack is built"
        );
    }
}
