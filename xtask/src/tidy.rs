//! House rules, checked by `cargo test` so that they hold without anyone remembering them.

#[cfg(test)]
mod tests {
    use std::{
        fs,
        path::{Path, PathBuf},
    };

    fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if name == "target" || name.to_string_lossy().starts_with('.') {
                continue;
            }
            if path.is_dir() {
                rust_files(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }

    #[test]
    fn every_rust_file_says_what_it_owns_and_has_no_debugging_leftovers() {
        let mut files = Vec::new();
        rust_files(&crate::project_root(), &mut files);
        assert!(files.len() > 30, "found only {} files", files.len());
        let mut problems = Vec::new();
        for file in &files {
            let text = fs::read_to_string(file).unwrap();
            if !text.starts_with("//!") {
                problems.push(format!("{}: does not start with a `//!` line saying what it owns", file.display()));
            }
            // This file names the macros it looks for.
            if file.ends_with("xtask/src/tidy.rs") {
                continue;
            }
            for (number, line) in text.lines().enumerate() {
                if let Some(word) = ["dbg!(", "todo!(", "unimplemented!("].iter().find(|b| line.contains(*b)) {
                    problems.push(format!("{}:{}: {word}", file.display(), number + 1));
                }
            }
        }
        assert!(problems.is_empty(), "house rules broken:\n{}", problems.join("\n"));
    }
}
