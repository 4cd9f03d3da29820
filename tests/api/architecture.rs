//! The layers point one way (docs/architecture.md): nothing below `http/` imports the HTTP layer,
//! and nothing but the command line imports the composition root (`app`).

use std::path::{Path, PathBuf};

/// Files that may import `http` and `app`: the HTTP layer itself and the top of the program.
fn is_top(relative: &str) -> bool {
    relative.starts_with("http/")
        || relative.starts_with("demo/")
        || ["app.rs", "cli.rs", "main.rs", "lib.rs"].contains(&relative)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a file's code reaches through `crate::`: in paths and in `use` trees.
fn crate_modules(source: &str) -> Vec<String> {
    let code: String =
        source.lines().filter(|line| !line.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
    let mut modules = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(tree) = rest.strip_prefix('{') {
            // A use tree: its top-level items, to the matching brace.
            let (mut depth, mut item, mut end) = (0, String::new(), tree.len());
            for (i, c) in tree.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        end = i;
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        modules.push(std::mem::take(&mut item));
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    item.push(c);
                }
            }
            modules.push(item);
            rest = &tree[end..];
        } else {
            modules.push(rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect());
        }
    }
    modules
        .into_iter()
        .map(|m| m.trim().split("::").next().unwrap_or("").trim().to_owned())
        .filter(|m| !m.is_empty())
        .collect()
}

#[test]
fn no_module_below_http_imports_the_http_layer_or_the_composition_root() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut offenders = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap().to_string_lossy().replace('\\', "/");
        if is_top(&relative) {
            continue;
        }
        let source = std::fs::read_to_string(file).unwrap();
        for module in crate_modules(&source) {
            if module == "http" || module == "app" {
                offenders.push(format!("src/{relative} imports crate::{module}"));
            }
        }
    }
    assert!(files.len() > 50, "only {} files read", files.len());
    assert!(offenders.is_empty(), "layers point one way (docs/architecture.md):\n{}", offenders.join("\n"));
}

#[test]
fn the_import_reader_sees_paths_and_use_trees() {
    let source = "use crate::{\n    db,\n    http::error::{ApiError, ErrorCode},\n};\n// crate::app is fine in a comment\nfn f() { crate::app::run(); }";
    assert_eq!(crate_modules(source), ["db", "http", "app"]);
}
