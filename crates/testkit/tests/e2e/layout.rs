//! The end-to-end tests stay one binary. Cargo makes every `tests/*.rs` a test binary of its
//! own (linked once more, with its own copy of the set-up), and silently leaves out a file in
//! `tests/e2e/` that no `mod` names; both are caught here.

use std::path::Path;

/// The `mod NAME;` lines of a module file.
fn declared(module_file: &Path) -> Vec<String> {
    std::fs::read_to_string(module_file)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let l = l.strip_prefix("pub ").unwrap_or(l);
            l.strip_prefix("mod ")?
                .strip_suffix(';')
                .map(str::to_string)
        })
        .collect()
}

/// Every `NAME.rs` and `NAME/` beside `module_file` in `dir`, recursively, that is not
/// declared by it: (path, what to do).
fn undeclared(dir: &Path, module_file: &Path, out: &mut Vec<String>) {
    let mods = declared(module_file);
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let (name, sub) = if path.is_dir() {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, Some(path.join("mod.rs")))
        } else if path.extension().is_some_and(|e| e == "rs") && path != module_file {
            (
                path.file_stem().unwrap().to_string_lossy().into_owned(),
                None,
            )
        } else {
            continue;
        };
        if !mods.contains(&name) {
            out.push(format!(
                "{} is not compiled: add `mod {name};` to {}",
                path.display(),
                module_file.display()
            ));
        }
        if let Some(sub) = sub {
            undeclared(&path, &sub, out);
        }
    }
}

#[test]
fn every_end_to_end_test_file_is_a_module_of_this_binary() {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut problems = Vec::new();
    for entry in std::fs::read_dir(&tests).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().is_some_and(|n| n != "e2e") {
            problems.push(format!(
                "{} is a test binary of its own: move it to tests/e2e/ and add its `mod` line \
                 to tests/e2e/main.rs",
                path.display()
            ));
        }
    }
    let e2e = tests.join("e2e");
    undeclared(&e2e, &e2e.join("main.rs"), &mut problems);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
